//! SAKKE
