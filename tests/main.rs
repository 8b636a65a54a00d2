//! End-to-end tests of the `groupguard` binary.

mod simulate;
