//! The signature base (RFC 9421 §2.5), byte for byte: one `"id": value` line per covered
//! component, then the `@signature-params` line, LF-separated, no trailing LF.

use super::RequestView;
use super::components::Component;
use crate::error::Error;

/// Builds the signature base for `components` over `req`, ending with `params_value`
/// (the `@signature-params` inner list as received).
pub fn signature_base(
    req: &RequestView<'_>,
    components: &[Component],
    params_value: &str,
) -> Result<String, Error> {
    let mut out = String::with_capacity(64 * (components.len() + 1) + params_value.len());
    for c in components {
        out.push_str(&c.id);
        out.push_str(": ");
        c.push_value(req, &mut out)?;
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(params_value);
    Ok(out)
}
