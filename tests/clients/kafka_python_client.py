"""kafka-python (2.3.x and 3.0.x) against Klamm: admin, produce with keys and duplicate
header keys in every codec, consume by assignment, offsets by timestamp, auto-creation.

usage: kafka_python_client.py produce|consume|admin BOOTSTRAP TOPIC COUNT"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

CODECS = ["gzip", "snappy", "lz4", "zstd", None]


def value(i):
    return b"value-%d" % i


def produce(bootstrap, topic, count):
    # Idempotence as each version defaults: on in kafka-python 3.x, off in 2.3.x.
    per_codec = count // len(CODECS)
    sent = 0
    for codec in CODECS:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec, linger_ms=5)
        futures = []
        for _ in range(per_codec):
            futures.append(producer.send(topic, key=b"key-%d" % sent, value=value(sent),
                                         headers=[("h", b"1"), ("h", b"2")], timestamp_ms=1_000_000 + sent))
            sent += 1
        for f in futures:
            f.get(timeout=30)
        producer.close()
    assert sent == count, (sent, count)


def consume(bootstrap, topic, count):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    got = []
    deadline = time.time() + 60
    while len(got) < count and time.time() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            got.extend(records)
    assert len(got) == count, (len(got), count)
    for i, m in enumerate(got):
        assert m.offset == i, (m.offset, i)
        assert m.key == b"key-%d" % i and m.value == value(i), (m.key, m.value)
        assert m.headers == [("h", b"1"), ("h", b"2")], m.headers
        assert m.timestamp == 1_000_000 + i, m.timestamp
    found = consumer.offsets_for_times({partition: 1_000_000 + count // 2})
    assert found[partition].offset == count // 2, found
    assert consumer.end_offsets([partition])[partition] == count
    consumer.close()


def admin(bootstrap, topic, count):
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    client.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "7200000"})])
    assert topic in client.list_topics()
    from kafka.admin import ConfigResource, ConfigResourceType
    described = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    text = repr(described)
    assert "retention.ms" in text and "7200000" in text, text
    client.delete_topics([topic])
    deadline = time.time() + 10
    while topic in client.list_topics() and time.time() < deadline:
        time.sleep(0.2)
    assert topic not in client.list_topics()
    # Auto-creation: producing to an unknown topic creates it through Metadata.
    auto = topic + "-auto"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(auto, b"x").get(timeout=30)
    producer.close()
    assert auto in client.list_topics()
    client.close()


if __name__ == "__main__":
    phase, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"produce": produce, "consume": consume, "admin": admin}[phase](bootstrap, topic, count)
    print("ok", phase)
