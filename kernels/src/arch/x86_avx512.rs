//! placeholder
use crate::traits::TypeTraits;

pub(crate) fn install(_table: &mut [TypeTraits]) {}
