//! Enums whose variants are numbers on the wire, each number written once.

/// Declares a `#[repr]` enum with the given numbers, and `from_repr`, which
/// reads a number back as its variant (`None` for one it does not know).
#[macro_export]
macro_rules! wire_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident: $repr:ident {
        $($(#[$vmeta:meta])* $variant:ident = $value:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr($repr)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            /// The variant numbered `value` on the wire, if any.
            pub fn from_repr(value: $repr) -> Option<$name> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::wire_enum! {
        enum Colour: u8 {
            Red = 1,
            Green = 7,
        }
    }

    #[test]
    fn every_number_reads_back_as_its_variant_and_no_other() {
        for colour in [Colour::Red, Colour::Green] {
            assert_eq!(Colour::from_repr(colour as u8), Some(colour));
        }
        assert_eq!(Colour::from_repr(2), None);
    }
}
