//! Tests of the whole loader: error positions, defaults, overrides, key files.
