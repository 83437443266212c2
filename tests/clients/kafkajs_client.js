// kafkajs 2.2.4 against Klamm: admin (create, list, delete topics) and produce with keys and
// duplicate-free headers (kafkajs models headers as an object). Consuming needs consumer
// groups, which Klamm does not serve yet.
// usage: node kafkajs_client.js produce|admin BOOTSTRAP TOPIC COUNT
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
  const [phase, bootstrap, topic, count] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'klamm-test', brokers: [bootstrap], logLevel: logLevel.ERROR });
  if (phase === 'admin') {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] });
    if (!(await admin.listTopics()).includes(topic)) throw new Error('created topic missing');
    const offsets = await admin.fetchTopicOffsets(topic);
    if (offsets.length !== 2) throw new Error('expected 2 partitions: ' + JSON.stringify(offsets));
    await admin.deleteTopics({ topics: [topic] });
    if ((await admin.listTopics()).includes(topic)) throw new Error('deleted topic still listed');
    await admin.disconnect();
  } else if (phase === 'produce') {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const messages = [];
    for (let i = 0; i < Number(count); i++) messages.push({ key: `key-${i}`, value: `value-${i}`, headers: { h: '1' }, partition: 0 });
    for (let i = 0; i < messages.length; i += 100) {
      const [result] = await producer.send({ topic, messages: messages.slice(i, i + 100), acks: -1, compression: CompressionTypes.GZIP });
      if (result.errorCode !== 0 || Number(result.baseOffset) !== i) throw new Error('produce: ' + JSON.stringify(result));
    }
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    const [end] = await admin.fetchTopicOffsets(topic);
    if (Number(end.high) !== Number(count)) throw new Error('high watermark ' + JSON.stringify(end));
    await admin.disconnect();
  }
  console.log('ok', phase);
}

main().catch((e) => { console.error(e); process.exit(1); });
