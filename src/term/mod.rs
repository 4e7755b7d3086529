//! Talking to the person: questions on the terminal ([`prompt`]), what is
//! said on stderr and how much ([`verbosity`]), and strings made safe to
//! show ([`printable`]).

pub(crate) mod printable;
pub(crate) mod prompt;
pub(crate) mod verbosity;
pub(crate) mod when;
