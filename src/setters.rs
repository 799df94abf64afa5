//! `setters!`: the builders' one-line setters, written once.

/// Writes consuming builder setters: `$(#[doc])* fn name(arg: Type) => field = value;` becomes
/// `pub fn name(mut self, arg: Type) -> Self { self.field = value; self }`.
macro_rules! setters {
    ($($(#[$doc:meta])* fn $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr;)+) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $arg: $ty) -> Self {
            self.$field = $value;
            self
        }
    )+};
}
pub(crate) use setters;
