//! What inferd reads of each input before and after tokenizing it: one pass over the text's
//! characters ([`TextStats`]) and the tokenizer's counts ([`TokenStats`]). The input policy
//! ([`super::policy`]) and the drift monitor ([`super::drift`]) both read these, so a text is
//! looked at once.

use crate::model::tokenizer::Tokens;

/// Character counts of one text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextStats {
    pub chars: usize,
    /// Characters that show: not whitespace, not control, not an invisible format character.
    pub visible: usize,
    /// Alphabetic characters, and those of them outside the Latin script.
    pub letters: usize,
    pub non_latin: usize,
    /// U+FFFD, what a lossy decoder leaves for invalid bytes.
    pub replacement: usize,
    /// NUL, other C0/C1 controls than tab and line breaks, and Unicode noncharacters.
    pub invalid: usize,
}

impl TextStats {
    pub fn of(text: &str) -> Self {
        let mut stats = Self::default();
        for c in text.chars() {
            stats.chars += 1;
            if c == '\u{FFFD}' {
                stats.replacement += 1;
            }
            if is_invalid(c) {
                stats.invalid += 1;
            }
            if c.is_whitespace() || c.is_control() || is_invisible_format(c) {
                continue;
            }
            stats.visible += 1;
            if c.is_alphabetic() {
                stats.letters += 1;
                if !is_latin(c) {
                    stats.non_latin += 1;
                }
            }
        }
        stats
    }

    /// The share of letters outside the Latin script (0 for a text without letters).
    pub fn non_latin_share(&self) -> f64 {
        ratio(self.non_latin, self.letters)
    }
}

/// Token counts of one tokenized text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenStats {
    /// Tokens the model sees, special tokens included.
    pub tokens: usize,
    /// Tokens the text gave, and those of them that are the unknown token.
    pub content: usize,
    pub unknown: usize,
    pub truncated: bool,
}

impl TokenStats {
    pub fn of(tokens: &Tokens) -> Self {
        Self {
            tokens: tokens.ids.len(),
            content: tokens.content,
            unknown: tokens.unknown,
            truncated: tokens.truncated,
        }
    }

    /// The share of the text's tokens that are unknown.
    pub fn unknown_ratio(&self) -> f64 {
        ratio(self.unknown, self.content)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Latin letters: ASCII, Latin-1 and the Latin Extended blocks, and fullwidth Latin.
fn is_latin(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z' | '\u{00AA}' | '\u{00BA}' | '\u{00C0}'..='\u{024F}'
        | '\u{1E00}'..='\u{1EFF}' | '\u{2C60}'..='\u{2C7F}' | '\u{A720}'..='\u{A7FF}'
        | '\u{AB30}'..='\u{AB6F}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}')
}

/// Zero-width characters and the byte-order mark: they render as nothing.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

fn is_invalid(c: char) -> bool {
    let noncharacter = matches!(c as u32, 0xFDD0..=0xFDEF) || (c as u32 & 0xFFFE) == 0xFFFE;
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || noncharacter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_visibility_are_counted() {
        let s = TextStats::of("Café 東京 \u{200B}\t");
        assert_eq!((s.chars, s.visible, s.letters, s.non_latin), (10, 6, 6, 2));
        assert!((s.non_latin_share() - 2.0 / 6.0).abs() < 1e-12);
        let emoji = TextStats::of("🙂🎉");
        assert_eq!(
            (emoji.visible, emoji.letters, emoji.non_latin_share()),
            (2, 0, 0.0)
        );
    }

    #[test]
    fn invalid_and_replacement_characters_are_counted() {
        let s = TextStats::of("a\u{0}b\u{FFFD}\u{FFFF}\n");
        assert_eq!((s.invalid, s.replacement), (2, 1));
        assert_eq!(TextStats::of(" \u{FEFF}\r\n").visible, 0);
    }
}
