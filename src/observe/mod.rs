//! Read-only views of kernel state for the pictures.

pub mod namespaces;
