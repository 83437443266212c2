//! The Kafka wire protocol: primitive encodings and the message codecs generated from
//! Kafka's JSON message specs by `generate.py`.

pub mod codec;
pub mod fuzzing;
pub mod messages;
#[cfg(test)]
mod random;
#[cfg(test)]
mod tests;
