//! The framing every node script's output shares (gc's inventory, the usage probe, the check
//! probes): one record a line, its fields split on single spaces; numbered records naming a base
//! path or volume by its position, from 1; and a closing `END` line after which nothing may
//! follow, so that an output cut off (a helper stopped, a log stream lost) is an error, never a
//! short answer. Each parser keeps only what its records mean.

/// A line that breaks a script's protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct BadLine {
    /// The line's number, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// One line before `END`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The line's number, counted from 1.
    pub line: usize,
    /// Its fields, split on single spaces (two spaces make an empty field).
    pub fields: Vec<&'a str>,
}

impl Record<'_> {
    /// This line, refused because of `problem`.
    pub fn bad(&self, problem: impl Into<String>) -> BadLine {
        BadLine {
            line: self.line,
            problem: problem.into(),
        }
    }

    /// The number `field` gives a `what` (counted from 1; not checked against any count).
    pub fn ordinal(&self, field: &str, what: &str) -> Result<usize, BadLine> {
        field
            .parse()
            .map_err(|_| self.bad(format!("the {what} number is not a number")))
    }
}

/// Hands each record of `output` before its `END` line to `record`, in order, and stops at the
/// first error. A line after `END` is refused; an output without `END` is `unfinished`.
pub fn read<'a, E: From<BadLine>>(
    output: &'a str,
    unfinished: E,
    mut record: impl FnMut(Record<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let mut ended = false;
    for (n, line) in output.lines().enumerate() {
        let this = Record {
            line: n + 1,
            fields: line.split(' ').collect(),
        };
        if ended {
            return Err(this.bad("text after END").into());
        }
        if line == "END" {
            ended = true;
            continue;
        }
        record(this)?;
    }
    if ended { Ok(()) } else { Err(unfinished) }
}

/// The one record each of a known number of things (base paths, volumes) gets: records name
/// them by number, from 1, in any order, and a second record for one is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered<T> {
    what: &'static str,
    twice: &'static str,
    slots: Vec<Option<T>>,
}

impl<T> Numbered<T> {
    /// `count` things, each a `what` (`"base path"`); `twice` is what a second record for one
    /// is told.
    pub fn new(count: usize, what: &'static str, twice: &'static str) -> Numbered<T> {
        Numbered {
            what,
            twice,
            slots: std::iter::repeat_with(|| None).take(count).collect(),
        }
    }

    /// The position (from 0) of the thing whose number `record` gives in `field`.
    pub fn index(&self, record: &Record<'_>, field: &str) -> Result<usize, BadLine> {
        let what = self.what;
        let i = record.ordinal(field, what)?;
        if i == 0 || i > self.slots.len() {
            return Err(record.bad(format!("no such {what} number")));
        }
        Ok(i - 1)
    }

    /// Records `value` for the thing at `index` (from [`Numbered::index`]); refused when
    /// it already has one.
    pub fn set(&mut self, record: &Record<'_>, index: usize, value: T) -> Result<(), BadLine> {
        match self.slots.get_mut(index) {
            Some(slot @ None) => {
                *slot = Some(value);
                Ok(())
            }
            Some(Some(_)) => Err(record.bad(self.twice)),
            None => Err(record.bad(format!("no such {} number", self.what))),
        }
    }

    /// What the thing at `index` has so far.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.slots.get(index)?.as_ref()
    }

    /// What the thing at `index` has so far, to add to.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index)?.as_mut()
    }

    /// Every thing's value, in order; or `missing(n)` for the first (numbered from 1) that got
    /// no record.
    pub fn finish<E>(self, missing: impl Fn(usize) -> E) -> Result<Vec<T>, E> {
        self.slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| slot.ok_or_else(|| missing(i + 1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Error {
        Line(BadLine),
        Unfinished,
    }

    impl From<BadLine> for Error {
        fn from(bad: BadLine) -> Error {
            Error::Line(bad)
        }
    }

    /// Every record `read` hands over, as (line, fields).
    fn all(output: &str) -> Result<Vec<(usize, Vec<&str>)>, Error> {
        let mut seen = Vec::new();
        read(output, Error::Unfinished, |r| {
            seen.push((r.line, r.fields));
            Ok(())
        })?;
        Ok(seen)
    }

    fn bad(line: usize, problem: &str) -> Error {
        Error::Line(BadLine {
            line,
            problem: problem.into(),
        })
    }

    #[test]
    fn records_are_numbered_lines_split_on_single_spaces_up_to_end() {
        assert_eq!(
            all("A 1 x\nB  2\nEND\n"),
            Ok(vec![(1, vec!["A", "1", "x"]), (2, vec!["B", "", "2"])])
        );
        assert_eq!(all("END"), Ok(vec![]), "no newline after END is fine");
        assert_eq!(
            all("A 1\nEND \n"),
            Err(Error::Unfinished),
            "`END ` is no END"
        );
    }

    #[test]
    fn an_output_without_end_or_with_text_after_it_is_refused() {
        assert_eq!(all(""), Err(Error::Unfinished));
        assert_eq!(all("A 1\n"), Err(Error::Unfinished));
        assert_eq!(all("A 1\nEND\nA 2\n"), Err(bad(3, "text after END")));
        assert_eq!(all("END\n\n"), Err(bad(2, "text after END")));
        assert_eq!(all("END\nEND\n"), Err(bad(2, "text after END")));
        assert_eq!(
            BadLine {
                line: 4,
                problem: "what".into()
            }
            .to_string(),
            "line 4: what"
        );
    }

    #[test]
    fn the_first_error_of_a_record_stops_the_reading() {
        let mut calls = 0;
        let result = read("A\nB\nC\nEND\n", Error::Unfinished, |r| {
            calls += 1;
            match r.fields[..] {
                ["B"] => Err(r.bad("no B here").into()),
                _ => Ok(()),
            }
        });
        assert_eq!(result, Err(bad(2, "no B here")));
        assert_eq!(calls, 2);
    }

    fn record(line: usize) -> Record<'static> {
        Record {
            line,
            fields: Vec::new(),
        }
    }

    #[test]
    fn numbers_name_things_from_one_within_the_count() {
        let r = record(7);
        let things: Numbered<u8> = Numbered::new(2, "base path", "twice");
        assert_eq!(things.index(&r, "1"), Ok(0));
        assert_eq!(things.index(&r, "2"), Ok(1));
        for out_of_range in ["0", "3", "18446744073709551615"] {
            assert_eq!(
                things.index(&r, out_of_range),
                Err(r.bad("no such base path number")),
                "{out_of_range}"
            );
        }
        for not_a_number in ["", "x", "-1", "+", "99999999999999999999999"] {
            assert_eq!(
                things.index(&r, not_a_number),
                Err(r.bad("the base path number is not a number")),
                "{not_a_number}"
            );
        }
        assert_eq!(r.ordinal("0", "volume"), Ok(0));
    }

    #[test]
    fn each_thing_gets_one_record_and_every_one_must_have_it() {
        let r = record(3);
        let mut things = Numbered::new(3, "volume", "volume reported twice");
        things.set(&r, 2, "c").unwrap();
        things.set(&r, 0, "a").unwrap();
        assert_eq!(things.set(&r, 2, "C"), Err(r.bad("volume reported twice")));
        assert_eq!(things.get(2), Some(&"c"), "the first record stays");
        assert_eq!(things.get(1), None);
        assert_eq!(things.set(&r, 9, "z"), Err(r.bad("no such volume number")));
        assert_eq!(things.clone().finish(|n| n), Err(2));
        things.set(&r, 1, "b").unwrap();
        if let Some(value) = things.get_mut(1) {
            *value = "B";
        }
        assert_eq!(things.finish(|n| n), Ok(vec!["a", "B", "c"]));
        assert_eq!(Numbered::<u8>::new(0, "x", "y").finish(|n| n), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn reading_never_panics_and_hands_over_only_lines_before_end(text in "[A-Z0-9 \n]{0,80}") {
            if let Ok(records) = all(&text) {
                let end = text.lines().position(|l| l == "END");
                prop_assert_eq!(end, Some(text.lines().count() - 1));
                prop_assert_eq!(records.len(), text.lines().count() - 1);
            }
        }
    }
}
