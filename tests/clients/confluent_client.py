"""confluent-kafka (librdkafka) against Klamm: admin, produce in every codec with keys and
duplicate header keys, consume by assignment, offsets by timestamp.

A compacted topic: the log cleaner leaves the last value of each key, at its offset, and a
record without a key is refused.

usage: confluent_client.py produce|consume|admin|compacted BOOTSTRAP TOPIC COUNT"""
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


def compacted(bootstrap, topic, count):
    keys = 10
    a = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"}
    for f in a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)]).values():
        f.result()
    from confluent_kafka.admin import ConfigResource
    for f in a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values():
        assert f.result()["cleanup.policy"].value == "compact"
    errors = []
    # Every codec: a compressed batch that loses records is rewritten.
    for n, codec in enumerate(CODECS):
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": codec,
                      "enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 10})
        for i in range(n * count // len(CODECS), (n + 1) * count // len(CODECS)):
            p.produce(topic, key=b"key-%d" % (i % keys), value=b"value-%d" % i,
                      on_delivery=lambda err, msg: err and errors.append(err))
        assert p.flush(30) == 0
    assert not errors, errors
    refused = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False, "retries": 0})
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: refused.append(err))
    p.flush(30)
    assert len(refused) == 1 and refused[0] is not None and refused[0].name() == "INVALID_RECORD", refused
    last = {b"key-%d" % (i % keys): (i, b"value-%d" % i) for i in range(count)}
    deadline = time.time() + 60
    while True:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        while not got or got[-1].offset() < count - 1:
            m = c.poll(1)
            assert time.time() < deadline, "the last offset never arrived"
            if m is not None:
                assert not m.error(), m.error()
                got.append(m)
        c.close()
        # Whatever was read is unchanged and in order, and the last of every key is there.
        offsets = [m.offset() for m in got]
        assert offsets == sorted(set(offsets)), "offsets out of order"
        for m in got:
            i = m.offset()
            assert m.key() == b"key-%d" % (i % keys) and m.value() == b"value-%d" % i, (i, m.key(), m.value())
        have = {m.key(): (m.offset(), m.value()) for m in got}
        assert have == last, "the last value of a key is missing"
        if len(got) < count // 2:
            print("compacted: %d of %d records left" % (len(got), count))
            return
        assert time.time() < deadline, ("not compacted", len(got), count)
        time.sleep(0.5)


if __name__ == "__main__":
    phase, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"produce": produce, "consume": consume, "admin": admin, "compacted": compacted}[phase](bootstrap, topic, count)
    print("ok", phase)
