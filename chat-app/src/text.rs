//! What the chat and talk protocols ask of text from clients.

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest message text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// HTML-escapes text that other clients will render.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b>&</b>"), "&lt;b&gt;&amp;&lt;/b&gt;");
    }
}
