"""Consumer groups with a real client against Klamm: three consumers on a six-partition
topic, each in its own thread, committing every record it handles.

1. Every partition is assigned exactly once among the three, and the admin client's
   describe shows those three members and their assignments (confluent-kafka: through
   ConsumerGroupDescribe for a KIP-848 group, DescribeGroups for a classic one).
2. One consumer leaves; the other two take over all six partitions, again exactly once,
   and every record is consumed at least once.
3. Everyone leaves; more records arrive; a consumer restarted with the same group id
   resumes at the committed offsets: it gets exactly the new records, nothing committed
   again and nothing skipped.
4. KIP-848 only: a regex subscription, resolved by the broker, takes the topics whose whole
   names match, including one created while the consumer runs, and no other.

usage: groups.py confluent|confluent-cooperative|confluent-consumer|kafka-python BOOTSTRAP TOPIC COUNT"""
import sys
import threading
import time

PARTITIONS = 6
DEADLINE_S = 90


class Confluent:
    def __init__(self, bootstrap, group, protocol):
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            if protocol == "cooperative":
                conf["partition.assignment.strategy"] = "cooperative-sticky"
            conf["session.timeout.ms"] = 6000
            conf["heartbeat.interval.ms"] = 500
        self.c = Consumer(conf)

    def subscribe(self, topic):
        self.c.subscribe([topic])

    def poll(self):
        m = self.c.poll(0.2)
        if m is None:
            return []
        assert not m.error(), m.error()
        from confluent_kafka import KafkaError, KafkaException
        try:
            self.c.commit(message=m, asynchronous=False)
        except KafkaException as e:
            # A rebalance under way (cooperative members keep consuming through it): the
            # commit is refused, and the record comes again to whoever owns it next.
            retriable = (KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                         KafkaError.UNKNOWN_MEMBER_ID)
            if e.args[0].code() not in retriable:
                raise
        return [(m.partition(), m.offset(), m.value())]

    def assignment(self):
        return {tp.partition for tp in self.c.assignment()}

    def close(self):
        self.c.close()


class KafkaPython:
    def __init__(self, bootstrap, group, protocol):
        from kafka import KafkaConsumer
        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                               enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                               max_poll_records=50)

    def subscribe(self, topic):
        self.c.subscribe([topic])

    def poll(self):
        from kafka import OffsetAndMetadata
        out = []
        # A long poll: kafka-python 3.0.12 can lose a join whose SyncGroup answer arrives just
        # as poll's timeout expires (the member stops heartbeating with no partitions and never
        # rejoins), so give a rebalance the whole of one poll to finish under a loaded CI machine.
        for tp, records in self.c.poll(timeout_ms=3000).items():
            for r in records:
                out.append((tp.partition, r.offset, r.value))
            offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)}
            self.c.commit(offsets)
        return out

    def assignment(self):
        return {tp.partition for tp in self.c.assignment()}

    def close(self):
        self.c.close()


def produce(kind, bootstrap, topic, start, count):
    if kind == "kafka-python":
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=bootstrap)
        for i in range(start, start + count):
            p.send(topic, key=b"key-%d" % i, value=b"value-%d" % i)
        p.flush(30)
        p.close()
        return
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(start, start + count):
        p.produce(topic, key=b"key-%d" % i, value=b"value-%d" % i)
    assert p.flush(30) == 0


def create_topic(kind, bootstrap, topic):
    if kind == "kafka-python":
        from kafka.admin import KafkaAdminClient, NewTopic
        a = KafkaAdminClient(bootstrap_servers=bootstrap)
        a.create_topics([NewTopic(topic, PARTITIONS, 1)])
        a.close()
        return
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result()


class Member(threading.Thread):
    """A consumer polling in its own thread until told to stop; what it saw is kept."""

    def __init__(self, make, topic):
        super().__init__(daemon=True)
        self.make, self.topic = make, topic
        self.seen = []
        self.current = set()
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            c = self.make()
            c.subscribe(self.topic)
            while not self.stop.is_set():
                self.seen.extend(c.poll())
                self.current = c.assignment()
            c.close()
        except Exception as e:  # reported by the main thread
            self.error = e


def described(kind, bootstrap, group, topic, members):
    """True once the admin client's description matches the members' own view."""
    if not kind.startswith("confluent"):
        return True
    from confluent_kafka import ConsumerGroupState, ConsumerGroupType
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    d = admin.describe_consumer_groups([group])[group].result(30)
    want_type = ConsumerGroupType.CONSUMER if kind == "confluent-consumer" else ConsumerGroupType.CLASSIC
    assert d.type == want_type, (d.type, want_type)
    assert not d.is_simple_consumer_group
    if d.state != ConsumerGroupState.STABLE or len(d.members) != len(members):
        return False
    theirs = sorted((tp.topic, tp.partition) for m in d.members for tp in m.assignment.topic_partitions)
    ours = sorted((topic, p) for m in members for p in m.current)
    if kind == "confluent-consumer":
        for m in d.members:
            target = sorted(tp.partition for tp in m.target_assignment.topic_partitions)
            assert target == sorted(tp.partition for tp in m.assignment.topic_partitions), "stable but moving"
    return theirs == ours


def wait_for(what, check, members=()):
    deadline = time.time() + DEADLINE_S
    while not check():
        assert time.time() < deadline, "timed out waiting for %s; members hold %s" % (
            what, [sorted(m.current) for m in members])
        time.sleep(0.1)


def exactly_once(members):
    owned = [p for m in members for p in m.current]
    return sorted(owned) == list(range(PARTITIONS))


def main(kind, bootstrap, topic, count):
    create_topic(kind, bootstrap, topic)
    produce(kind, bootstrap, topic, 0, count)
    group = "group-" + topic
    impl, protocol = {"confluent": (Confluent, "classic"), "confluent-consumer": (Confluent, "consumer"),
                      "confluent-cooperative": (Confluent, "cooperative"),
                      "kafka-python": (KafkaPython, "classic")}[kind]

    def make():
        return impl(bootstrap, group, protocol)

    members = [Member(make, topic) for _ in range(3)]
    for m in members:
        m.start()

    def healthy():
        for m in members:
            assert m.error is None, m.error
        return True

    wait_for("three members to share six partitions", lambda: healthy() and exactly_once(members)
             and all(m.current for m in members), members)
    wait_for("the group's description to show the three", lambda: healthy() and exactly_once(members)
             and described(kind, bootstrap, group, topic, members), members)
    # One leaves; the other two take everything over.
    members[2].stop.set()
    members[2].join(30)
    assert members[2].error is None, members[2].error
    wait_for("two members to take over", lambda: healthy() and exactly_once(members[:2]), members[:2])
    values = lambda: {v for m in members for (_, _, v) in m.seen}
    wait_for("every record at least once", lambda: healthy() and len(values()) == count)
    for m in members[:2]:
        m.stop.set()
        m.join(30)
        assert m.error is None, m.error
    # Restart with the same group id: exactly the records produced since.
    produce(kind, bootstrap, topic, count, count)
    again = Member(make, topic)
    again.start()
    wanted = {b"value-%d" % i for i in range(count, 2 * count)}
    wait_for("the restarted member to catch up",
             lambda: (again.error is None or (_ for _ in ()).throw(again.error))
             and {v for (_, _, v) in again.seen} >= wanted)
    time.sleep(1)  # anything redelivered would arrive now
    again.stop.set()
    again.join(30)
    got = [v for (_, _, v) in again.seen]
    assert sorted(got) == sorted(wanted), ("redelivered or skipped", len(got), len(wanted),
                                           sorted(set(got) - wanted)[:5])
    if kind == "confluent-consumer":
        regex_subscription(bootstrap, topic)
    print("ok", kind)


def regex_subscription(bootstrap, topic):
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    first, later, other = topic + "-rx-a", topic + "-rx-b", "x" + topic + "-rx-c"
    for f in admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)
                                  for t in (first, other)]).values():
        f.result()
    produce("confluent", bootstrap, first, 0, 10)
    produce("confluent", bootstrap, other, 0, 10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "group-" + topic + "-rx",
                  "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c.subscribe(["^" + topic + "-rx-.*"])
    seen = set()
    created = False
    deadline = time.time() + DEADLINE_S
    while len(seen) < 20:
        assert time.time() < deadline, ("regex subscription", sorted(seen)[:5], len(seen))
        m = c.poll(0.2)
        if m is None:
            continue
        assert not m.error(), m.error()
        seen.add((m.topic(), m.value()))
        if len(seen) == 10 and not created:
            for f in admin.create_topics([NewTopic(later, num_partitions=1, replication_factor=1)]).values():
                f.result()
            produce("confluent", bootstrap, later, 0, 10)
            created = True
    # Anything from the topic that does not match would arrive now.
    quiet = time.time() + 1
    while time.time() < quiet:
        m = c.poll(0.2)
        if m is None:
            continue
        assert not m.error(), m.error()
        seen.add((m.topic(), m.value()))
    c.close()
    assert {t for t, _ in seen} == {first, later}, sorted({t for t, _ in seen})
    assert len(seen) == 20, len(seen)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
