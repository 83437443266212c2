#!/usr/bin/env python3
"""A librdkafka load for benches/compare.sh, through confluent-kafka.

    rdkafka_load.py produce BOOTSTRAP TOPIC RECORDS SIZE ACKS RATE
    rdkafka_load.py consume BOOTSTRAP TOPIC RECORDS

Produce sends RECORDS records of SIZE bytes to partition 0 (no key, no compression, not
idempotent, as producer-perf-test does), at most RATE records/s (0: as fast as it can),
and samples the delivery latency of one record in 64. Consume assigns partition 0 from the
beginning (no group) and reads RECORDS records. Each prints one line:
`records_per_s mb_per_s p99_ms` (MB = 10^6 bytes; p99 is `-` for consume). Everything is
bounded: a phase that does not finish in 120 s fails.

Python spends a few microseconds per record, so unpaced this measures the client more than
the broker; compare.sh uses kcat for throughput and this for latency at a fixed rate.
"""
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

PHASE_S_MAX = 120
SAMPLE_EVERY = 64


def produce(bootstrap, topic, records, size, acks, rate):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "compression.type": "none",
        "enable.idempotence": False,
    })
    payload = b"x" * size
    latencies = []
    failures = []

    def sampled(sent):
        def report(err, _msg):
            if err is not None:
                failures.append(err)
            latencies.append(time.monotonic() - sent)
        return report

    start = time.monotonic()
    deadline = start + PHASE_S_MAX
    for i in range(records):
        callback = sampled(time.monotonic()) if i % SAMPLE_EVERY == 0 else None
        while True:
            try:
                if callback is None:
                    producer.produce(topic, payload, partition=0)
                else:
                    producer.produce(topic, payload, partition=0, on_delivery=callback)
                break
            except BufferError:
                producer.poll(0.005)
                if time.monotonic() > deadline:
                    sys.exit("produce: timed out with a full queue")
        # Delivery callbacks run only inside poll: call it often enough that the sampled
        # latency is the broker's, not this loop's.
        if i % 16 == 0:
            producer.poll(0)
            if rate > 0:
                ahead = start + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - start
    if left or failures:
        sys.exit(f"produce: {left} records undelivered, errors {failures[:3]}")
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"{records / elapsed:.0f} {records * size / elapsed / 1e6:.1f} {p99:.1f}")


def consume(bootstrap, topic, records):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "rdkafka-load",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
    })
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    count = 0
    nbytes = 0
    start = time.monotonic()
    while count < records:
        if time.monotonic() - start > PHASE_S_MAX:
            sys.exit(f"consume: timed out after {count} records")
        for message in consumer.consume(10_000, timeout=1.0):
            if message.error() is not None:
                raise KafkaException(message.error())
            count += 1
            nbytes += len(message)
    elapsed = time.monotonic() - start
    consumer.close()
    print(f"{count / elapsed:.0f} {nbytes / elapsed / 1e6:.1f} -")


def main():
    phase, bootstrap, topic, records = sys.argv[1:5]
    if phase == "produce":
        produce(bootstrap, topic, int(records), int(sys.argv[5]), sys.argv[6], int(sys.argv[7]))
    elif phase == "consume":
        consume(bootstrap, topic, int(records))
    else:
        sys.exit(f"unknown phase {phase}")


if __name__ == "__main__":
    main()
