//! The bounded online ensemble: pure maths, no I/O (STUB).
