"""aiokafka against Klamm: produce with keys and duplicate header keys (gzip), consume by
assignment. usage: aiokafka_client.py produce|consume BOOTSTRAP TOPIC COUNT"""
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


if __name__ == "__main__":
    phase, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    asyncio.run({"produce": produce, "consume": consume}[phase](bootstrap, topic, count))
    print("ok", phase)
