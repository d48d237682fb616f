// SPDX-License-Identifier: GPL-2.0

//! Host build of the driver's hardware-format layer (`hw`), for `cargo test`.
//!
//! The same `hw.rs` and `hw/` files compile into the kernel module; here they
//! are checked against a model of memory and mappings, and against `hw::walk`.

#![allow(
    dead_code,
    reason = "only `hw` is built here: parts of it only the driver uses"
)]

mod hw;

#[cfg(test)]
#[path = "host/tests.rs"]
mod tests;
