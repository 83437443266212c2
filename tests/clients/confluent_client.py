"""confluent-kafka (librdkafka) against Klamm: admin, produce in every codec with keys and
duplicate header keys, consume by assignment, offsets by timestamp.

usage: confluent_client.py produce|consume|admin BOOTSTRAP TOPIC COUNT"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["gzip", "snappy", "lz4", "zstd", "none"]


def produce(bootstrap, topic, count):
    per_codec = count // len(CODECS)
    sent = 0
    errors = []
    for codec in CODECS:
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": codec,
                      "enable.idempotence": True, "linger.ms": 5})
        for _ in range(per_codec):
            p.produce(topic, key=b"key-%d" % sent, value=b"value-%d" % sent, headers=[("h", b"1"), ("h", b"2")],
                      timestamp=1_000_000 + sent, on_delivery=lambda err, msg: err and errors.append(err))
            sent += 1
        assert p.flush(30) == 0
    assert not errors, errors


def consume(bootstrap, topic, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 60
    while len(got) < count and time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        assert not m.error(), m.error()
        got.append(m)
    assert len(got) == count, (len(got), count)
    for i, m in enumerate(got):
        assert m.offset() == i and m.key() == b"key-%d" % i and m.value() == b"value-%d" % i
        assert m.headers() == [("h", b"1"), ("h", b"2")], m.headers()
        assert m.timestamp()[1] == 1_000_000 + i
    found = c.offsets_for_times([TopicPartition(topic, 0, 1_000_000 + count // 2)], 10)
    assert found[0].offset == count // 2, found
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 10)
    assert (lo, hi) == (0, count), (lo, hi)
    c.close()


def admin(bootstrap, topic, count):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        f.result()
    assert topic in a.list_topics(timeout=10).topics
    # DescribeConfigs and IncrementalAlterConfigs through librdkafka's admin API.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic,
                              incremental_configs=[ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([resource]).values():
        f.result()
    for f in a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values():
        configs = f.result()
        assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
        assert configs["cleanup.policy"].value == "delete"
    for f in a.delete_topics([topic]).values():
        f.result()
    assert topic not in a.list_topics(timeout=10).topics


if __name__ == "__main__":
    phase, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"produce": produce, "consume": consume, "admin": admin}[phase](bootstrap, topic, count)
    print("ok", phase)
