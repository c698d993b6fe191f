//! Running a split app on one machine: `amimono bindings` writes a bindings
//! file for localhost with stable ports ([`bindings`]), and `amimono up`
//! builds the bundle and runs one `amimono run` process per job ([`up`]).

pub mod bindings;
pub mod up;
