//! The process's exit codes, as README and the man pages list them: one enum, turned into a
//! number once, in `main`.

/// The process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything went fine.
    Success,
    /// 1: something failed (or, with `gc --exit-code`, orphans were found).
    Failure,
    /// 2: the command line was wrong.
    Usage,
    /// 3: refused for safety, needs `--yes`, or a check found something that needs attention.
    Refused,
    /// 130: stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Interrupted => 130,
        }
    }
}
