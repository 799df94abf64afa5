//! Assertions on what a [`herald::testing::RecordingReporter`] recorded.

/// Asserts that `$rec` recorded an event matching the pattern (a guard may follow it).
macro_rules! assert_recorded {
    ($rec:expr, $($pattern:tt)+) => {{
        let events = $rec.events();
        assert!(
            events.iter().any(|e| matches!(e, $($pattern)+)),
            "no {} among {events:?}",
            stringify!($($pattern)+),
        );
    }};
}
pub(crate) use assert_recorded;

/// `$value` of each recorded event that matches `$pattern`, in order.
macro_rules! recorded {
    ($rec:expr, $pattern:pat => $value:expr) => {
        $rec.events()
            .iter()
            .filter_map(|e| match e {
                $pattern => Some($value),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use recorded;
