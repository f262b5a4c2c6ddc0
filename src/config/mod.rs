//! The upstream-compatible configuration (`local-path-config`): parse, validate, defaults. Pure.
