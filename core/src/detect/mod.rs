//! Detectors that find things in folded text: links and phone numbers.

pub mod links;
pub mod phone;
