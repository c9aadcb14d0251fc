//! ECCSI
