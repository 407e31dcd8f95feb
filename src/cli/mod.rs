//! TEMPORARY (keys branch): only so `keygen` compiles; the lead's src/cli/mod.rs replaces this.
pub mod keygen;
