//! Names of headers MCPTT uses that have no typed accessor (read them with `header(name)`).

/// P-Asserted-Identity (RFC 3325).
pub const P_ASSERTED_IDENTITY: &str = "P-Asserted-Identity";
/// P-Preferred-Identity (RFC 3325).
pub const P_PREFERRED_IDENTITY: &str = "P-Preferred-Identity";
/// P-Preferred-Service (RFC 6050), e.g. `urn:urn-7:3gpp-service.ims.icsi.mcptt`.
pub const P_PREFERRED_SERVICE: &str = "P-Preferred-Service";
/// P-Asserted-Service (RFC 6050).
pub const P_ASSERTED_SERVICE: &str = "P-Asserted-Service";
/// Resource-Priority (RFC 4412), e.g. `mcpttp.4`.
pub const RESOURCE_PRIORITY: &str = "Resource-Priority";
/// Accept-Contact (RFC 3841; compact form `a`).
pub const ACCEPT_CONTACT: &str = "Accept-Contact";
/// Record-Route (RFC 3261 20.30).
pub const RECORD_ROUTE: &str = "Record-Route";
/// Route (RFC 3261 20.34).
pub const ROUTE: &str = "Route";
/// Content-Disposition (RFC 3261 20.11).
pub const CONTENT_DISPOSITION: &str = "Content-Disposition";
/// Content-ID (RFC 2045 7).
pub const CONTENT_ID: &str = "Content-ID";
