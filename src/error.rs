//! Kafka error codes. Every operating error a core returns maps to one of these, so that a
//! client sees the code it expects.

use std::fmt;

/// The Kafka error codes Klamm returns, with their wire values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    UnknownLeaderEpoch = 75,
    FencedLeaderEpoch = 74,
    InvalidReplicaAssignment = 39,
    UnknownServerError = -1,
    UnknownTopicId = 100,
    InvalidConfig = 40,
    InvalidReplicationFactor = 38,
    InvalidPartitions = 37,
    TopicAlreadyExists = 36,
    TopicAuthorizationFailed = 29,
    InvalidRequiredAcks = 21,
    NotEnoughReplicas = 19,
    InvalidTopicException = 17,
    RequestTimedOut = 7,
    NotLeaderOrFollower = 6,
    LeaderNotAvailable = 5,
    UnknownTopicOrPartition = 3,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    MessageTooLarge = 10,
    RecordListTooLarge = 18,
    InvalidTimestamp = 32,
    UnsupportedVersion = 35,
    InvalidRequest = 42,
    UnsupportedForMessageFormat = 43,
    KafkaStorageError = 56,
    UnsupportedCompressionType = 76,
    InvalidRecord = 87,
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    OutOfOrderSequenceNumber = 45,
    DuplicateSequenceNumber = 46,
    InvalidProducerEpoch = 47,
    UnknownProducerId = 59,
    NotCoordinator = 16,
    OffsetMetadataTooLarge = 12,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    GroupSubscribedToTopic = 86,
    FencedMemberEpoch = 110,
    UnreleasedInstanceId = 111,
    UnsupportedAssignor = 112,
    StaleMemberEpoch = 113,
    InvalidRegularExpression = 128,
}

impl ErrorCode {
    pub fn code(self) -> i16 {
        self as i16
    }

    /// Kafka's name for the code, as its clients print it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "NONE",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
            ErrorCode::UnknownServerError => "UNKNOWN_SERVER_ERROR",
            ErrorCode::UnknownTopicId => "UNKNOWN_TOPIC_ID",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorCode::InvalidPartitions => "INVALID_PARTITIONS",
            ErrorCode::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorCode::TopicAuthorizationFailed => "TOPIC_AUTHORIZATION_FAILED",
            ErrorCode::InvalidRequiredAcks => "INVALID_REQUIRED_ACKS",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::InvalidTopicException => "INVALID_TOPIC_EXCEPTION",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::CorruptMessage => "CORRUPT_MESSAGE",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::RecordListTooLarge => "RECORD_LIST_TOO_LARGE",
            ErrorCode::InvalidTimestamp => "INVALID_TIMESTAMP",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::UnsupportedForMessageFormat => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
            ErrorCode::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            ErrorCode::UnsupportedCompressionType => "UNSUPPORTED_COMPRESSION_TYPE",
            ErrorCode::InvalidRecord => "INVALID_RECORD",
            ErrorCode::CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            ErrorCode::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::DuplicateSequenceNumber => "DUPLICATE_SEQUENCE_NUMBER",
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            ErrorCode::NotCoordinator => "NOT_COORDINATOR",
            ErrorCode::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            ErrorCode::InvalidGroupId => "INVALID_GROUP_ID",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::NonEmptyGroup => "NON_EMPTY_GROUP",
            ErrorCode::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            ErrorCode::MemberIdRequired => "MEMBER_ID_REQUIRED",
            ErrorCode::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
            ErrorCode::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorCode::GroupSubscribedToTopic => "GROUP_SUBSCRIBED_TO_TOPIC",
            ErrorCode::FencedMemberEpoch => "FENCED_MEMBER_EPOCH",
            ErrorCode::UnreleasedInstanceId => "UNRELEASED_INSTANCE_ID",
            ErrorCode::UnsupportedAssignor => "UNSUPPORTED_ASSIGNOR",
            ErrorCode::StaleMemberEpoch => "STALE_MEMBER_EPOCH",
            ErrorCode::InvalidRegularExpression => "INVALID_REGULAR_EXPRESSION",
        }
    }
}

/// An operating error with its Kafka code and a message for logs and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaError {
    pub code: ErrorCode,
    pub message: String,
}

impl KafkaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> KafkaError {
        KafkaError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for KafkaError {}

pub type KafkaResult<T> = Result<T, KafkaError>;

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_match_kafka() {
        let cases = [
            (ErrorCode::None, 0, "NONE"),
            (ErrorCode::UnknownLeaderEpoch, 75, "UNKNOWN_LEADER_EPOCH"),
            (ErrorCode::FencedLeaderEpoch, 74, "FENCED_LEADER_EPOCH"),
            (ErrorCode::InvalidReplicaAssignment, 39, "INVALID_REPLICA_ASSIGNMENT"),
            (ErrorCode::UnknownServerError, -1, "UNKNOWN_SERVER_ERROR"),
            (ErrorCode::UnknownTopicId, 100, "UNKNOWN_TOPIC_ID"),
            (ErrorCode::InvalidConfig, 40, "INVALID_CONFIG"),
            (ErrorCode::InvalidReplicationFactor, 38, "INVALID_REPLICATION_FACTOR"),
            (ErrorCode::InvalidPartitions, 37, "INVALID_PARTITIONS"),
            (ErrorCode::TopicAlreadyExists, 36, "TOPIC_ALREADY_EXISTS"),
            (ErrorCode::TopicAuthorizationFailed, 29, "TOPIC_AUTHORIZATION_FAILED"),
            (ErrorCode::InvalidRequiredAcks, 21, "INVALID_REQUIRED_ACKS"),
            (ErrorCode::NotEnoughReplicas, 19, "NOT_ENOUGH_REPLICAS"),
            (ErrorCode::InvalidTopicException, 17, "INVALID_TOPIC_EXCEPTION"),
            (ErrorCode::RequestTimedOut, 7, "REQUEST_TIMED_OUT"),
            (ErrorCode::NotLeaderOrFollower, 6, "NOT_LEADER_OR_FOLLOWER"),
            (ErrorCode::LeaderNotAvailable, 5, "LEADER_NOT_AVAILABLE"),
            (ErrorCode::UnknownTopicOrPartition, 3, "UNKNOWN_TOPIC_OR_PARTITION"),
            (ErrorCode::OffsetOutOfRange, 1, "OFFSET_OUT_OF_RANGE"),
            (ErrorCode::CorruptMessage, 2, "CORRUPT_MESSAGE"),
            (ErrorCode::MessageTooLarge, 10, "MESSAGE_TOO_LARGE"),
            (ErrorCode::RecordListTooLarge, 18, "RECORD_LIST_TOO_LARGE"),
            (ErrorCode::InvalidTimestamp, 32, "INVALID_TIMESTAMP"),
            (ErrorCode::UnsupportedVersion, 35, "UNSUPPORTED_VERSION"),
            (ErrorCode::InvalidRequest, 42, "INVALID_REQUEST"),
            (
                ErrorCode::UnsupportedForMessageFormat,
                43,
                "UNSUPPORTED_FOR_MESSAGE_FORMAT",
            ),
            (ErrorCode::KafkaStorageError, 56, "KAFKA_STORAGE_ERROR"),
            (
                ErrorCode::UnsupportedCompressionType,
                76,
                "UNSUPPORTED_COMPRESSION_TYPE",
            ),
            (ErrorCode::InvalidRecord, 87, "INVALID_RECORD"),
            (ErrorCode::CoordinatorLoadInProgress, 14, "COORDINATOR_LOAD_IN_PROGRESS"),
            (ErrorCode::CoordinatorNotAvailable, 15, "COORDINATOR_NOT_AVAILABLE"),
            (ErrorCode::OutOfOrderSequenceNumber, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
            (ErrorCode::DuplicateSequenceNumber, 46, "DUPLICATE_SEQUENCE_NUMBER"),
            (ErrorCode::InvalidProducerEpoch, 47, "INVALID_PRODUCER_EPOCH"),
            (ErrorCode::UnknownProducerId, 59, "UNKNOWN_PRODUCER_ID"),
            (ErrorCode::NotCoordinator, 16, "NOT_COORDINATOR"),
            (ErrorCode::OffsetMetadataTooLarge, 12, "OFFSET_METADATA_TOO_LARGE"),
            (ErrorCode::IllegalGeneration, 22, "ILLEGAL_GENERATION"),
            (ErrorCode::InconsistentGroupProtocol, 23, "INCONSISTENT_GROUP_PROTOCOL"),
            (ErrorCode::InvalidGroupId, 24, "INVALID_GROUP_ID"),
            (ErrorCode::UnknownMemberId, 25, "UNKNOWN_MEMBER_ID"),
            (ErrorCode::InvalidSessionTimeout, 26, "INVALID_SESSION_TIMEOUT"),
            (ErrorCode::RebalanceInProgress, 27, "REBALANCE_IN_PROGRESS"),
            (ErrorCode::NonEmptyGroup, 68, "NON_EMPTY_GROUP"),
            (ErrorCode::GroupIdNotFound, 69, "GROUP_ID_NOT_FOUND"),
            (ErrorCode::MemberIdRequired, 79, "MEMBER_ID_REQUIRED"),
            (ErrorCode::GroupMaxSizeReached, 81, "GROUP_MAX_SIZE_REACHED"),
            (ErrorCode::FencedInstanceId, 82, "FENCED_INSTANCE_ID"),
            (ErrorCode::GroupSubscribedToTopic, 86, "GROUP_SUBSCRIBED_TO_TOPIC"),
            (ErrorCode::FencedMemberEpoch, 110, "FENCED_MEMBER_EPOCH"),
            (ErrorCode::UnreleasedInstanceId, 111, "UNRELEASED_INSTANCE_ID"),
            (ErrorCode::UnsupportedAssignor, 112, "UNSUPPORTED_ASSIGNOR"),
            (ErrorCode::StaleMemberEpoch, 113, "STALE_MEMBER_EPOCH"),
            (ErrorCode::InvalidRegularExpression, 128, "INVALID_REGULAR_EXPRESSION"),
        ];
        for (code, value, name) in cases {
            assert_eq!(code.code(), value, "{name}");
            assert_eq!(code.name(), name);
        }
    }
}
