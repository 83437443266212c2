"""aiokafka against Klamm: produce with keys and duplicate header keys (gzip), consume by
assignment, and a group of three consumers (the scenario of groups.py: exactly-once
assignment of six partitions, take-over when one leaves, resumption at the committed
offsets). usage: aiokafka_client.py produce|consume|group BOOTSTRAP TOPIC COUNT"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def produce(bootstrap, topic, count):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip", enable_idempotence=True)
    await p.start()
    try:
        for i in range(count):
            await p.send(topic, key=b"key-%d" % i, value=b"value-%d" % i, headers=[("h", b"1"), ("h", b"2")])
        await p.flush()
    finally:
        await p.stop()


async def consume(bootstrap, topic, count):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        await c.seek_to_beginning(tp)
        got = []
        while len(got) < count:
            batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 30)
            for records in batch.values():
                got.extend(records)
        for i, m in enumerate(got):
            assert (m.offset, m.key, m.value) == (i, b"key-%d" % i, b"value-%d" % i), m
            assert list(m.headers) == [("h", b"1"), ("h", b"2")], m.headers
    finally:
        await c.stop()


PARTITIONS = 6
DEADLINE_S = 90


async def produce_plain(bootstrap, topic, start, count):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await p.start()
    try:
        for i in range(start, start + count):
            await p.send(topic, key=b"key-%d" % i, value=b"value-%d" % i)
        await p.flush()
    finally:
        await p.stop()


class Member:
    """A consumer in its own task, committing what it handles."""

    def __init__(self, bootstrap, group, topic):
        self.c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                  auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500)
        self.seen = []
        self.stopping = False

    async def run(self):
        await self.c.start()
        try:
            while not self.stopping:
                batch = await self.c.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    self.seen.extend(r.value for r in records)
                    await self.c.commit({tp: records[-1].offset + 1})
        finally:
            await self.c.stop()

    def current(self):
        return {tp.partition for tp in self.c.assignment()}


async def wait_for(what, check):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not check():
        assert loop.time() < deadline, "timed out waiting for " + what
        await asyncio.sleep(0.1)


def exactly_once(members):
    return sorted(p for m in members for p in m.current()) == list(range(PARTITIONS))


async def group(bootstrap, topic, count):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    await produce_plain(bootstrap, topic, 0, count)
    name = "group-" + topic
    members = [Member(bootstrap, name, topic) for _ in range(3)]
    tasks = [asyncio.create_task(m.run()) for m in members]

    def healthy():
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()
        return True

    await wait_for("three members", lambda: healthy() and exactly_once(members) and all(m.current() for m in members))
    members[2].stopping = True
    await tasks[2]
    await wait_for("two members to take over", lambda: healthy() and exactly_once(members[:2]))
    await wait_for("every record", lambda: healthy() and len({v for m in members for v in m.seen}) == count)
    for m, t in zip(members[:2], tasks[:2]):
        m.stopping = True
        await t
    await produce_plain(bootstrap, topic, count, count)
    again = Member(bootstrap, name, topic)
    task = asyncio.create_task(again.run())
    wanted = {b"value-%d" % i for i in range(count, 2 * count)}
    await wait_for("the restarted member", lambda: (not task.done() or task.result()) and set(again.seen) >= wanted)
    await asyncio.sleep(1)
    again.stopping = True
    await task
    assert sorted(again.seen) == sorted(wanted), ("redelivered or skipped", len(again.seen), len(wanted))


if __name__ == "__main__":
    phase, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    asyncio.run({"produce": produce, "consume": consume, "group": group}[phase](bootstrap, topic, count))
    print("ok", phase)
