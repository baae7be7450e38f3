//! Labs: guided exercises, each a folder of Markdown steps under `labs/`, whose checks
//! gantry verifies against the kernel's real state for the student.
//!
//! - [`format`]: a lab's files (`lab.toml`, `steps/NN-slug.md`) parsed and validated;
//! - [`markdown`]: a step's body rendered to HTML, its shell code blocks extracted;
//! - [`check`]: the vocabulary of checks (`run` in a container, `assert` on kernel state);
//! - [`catalog`]: all labs, from the binary or a folder;
//! - [`evaluate`]: running a step's checks against a session.

pub mod catalog;
pub mod check;
pub mod evaluate;
pub mod format;
pub mod markdown;

pub use catalog::{Catalog, InvalidLabs};
pub use check::{Assertion, Check, CheckKind, Namespace, Target};
pub use format::{Feature, Lab, LabError, LabId, SessionNeeds, Step};
