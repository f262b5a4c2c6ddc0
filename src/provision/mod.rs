//! Decisions as data: path choice, naming, pathPattern, PV and helper-pod builders, template
//! validation, and what should happen to a claim or volume. Pure.
