//! Haven's wire contracts: the `haven.v1` protobuf package and the Rust code generated from it.
//!
//! This crate holds the `.proto` files and nothing else: no logic, no conversions. Conversions
//! between these types and domain types live in each service's conversion module, so the
//! domain never depends on prost. Field numbers are never reused; a breaking change is a new
//! message or a new event type (docs/adr/0003-event-encoding-and-versioning.md).

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
#![allow(missing_debug_implementations)]

/// Version 1 of every Haven contract.
pub mod v1 {
    tonic::include_proto!("haven.v1");

    /// The encoded `FileDescriptorSet` of every Haven proto, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("haven_descriptor");
}

pub use prost;
pub use prost_types;
