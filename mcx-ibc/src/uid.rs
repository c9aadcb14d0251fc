//! UID
