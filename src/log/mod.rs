//! The partition log, in Kafka's shape: a [`UnifiedLog`] of [`LogSegment`]s, each a `.log`
//! file of record batches with a sparse [`OffsetIndex`] and [`TimeIndex`].

mod checkpoint;
pub mod cleaner;
#[cfg(not(madsim))]
pub mod fuzzing;
mod index;
pub mod partition_metadata;
mod producer_state;
mod segment;
mod unified_log;

pub use checkpoint::{LogCheckpoint, CHECKPOINT_FILE_NAME};
pub use index::{OffsetIndex, TimeIndex};
pub use producer_state::{last_sequence, BatchMetadata, ProducerStateEntry, ProducerStateManager, SequenceCheck};
pub use segment::{log_file_name, offset_index_file_name, parse_file_name, time_index_file_name, LogSegment};
pub use unified_log::{remove_log_dir, CleanStats, LogAppendInfo, LogDirFailureChannel, LogReadInfo, UnifiedLog};

#[cfg(test)]
mod tests;
