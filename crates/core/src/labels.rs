//! Closed sets of words for metric labels and logs: an enum whose variants each spell one
//! snake-case word, all of them listed (so series can be pre-created), and — in crates
//! that export metrics — encoded as a Prometheus label value. The core itself exports
//! nothing: the encoding is expanded in the crate that uses the macro.

/// Declares `enum $name { $variant => "word", ... }` with `as_str`, `ALL`, `Display`, and
/// `prometheus_client`'s `EncodeLabelValue` (the calling crate must depend on it).
#[macro_export]
macro_rules! label_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, for pre-creating series.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word this value is exported as.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut ::prometheus_client::encoding::LabelValueEncoder,
            ) -> ::std::fmt::Result {
                ::std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}
