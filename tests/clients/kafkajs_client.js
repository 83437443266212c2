// kafkajs 2.2.4 against Klamm: admin (create, list, delete topics), produce with keys and
// duplicate-free headers (kafkajs models headers as an object), and a consumer group of
// three on six partitions (kafkajs consumes only through a group): every partition
// assigned once, take-over when one leaves, resumption at the committed offsets.
// usage: node kafkajs_client.js produce|admin|group BOOTSTRAP TOPIC COUNT
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
  else if (phase === 'group') await group(kafka, topic, Number(count));
  console.log('ok', phase);
}

const PARTITIONS = 6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check) {
  const deadline = Date.now() + 90000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await sleep(100);
  }
}

async function produceRange(kafka, topic, start, count) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = start; i < start + count; i++) messages.push({ key: `key-${i}`, value: `value-${i}` });
  await producer.send({ topic, messages, acks: -1 });
  await producer.disconnect();
}

// A group member: kafkajs commits what eachMessage returns from (autoCommit off: each
// record's offset + 1, committed before the next).
async function member(kafka, groupId, topic) {
  const m = { seen: [], assigned: new Set() };
  m.consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 10000 });
  m.consumer.on(m.consumer.events.GROUP_JOIN, (e) => {
    m.assigned = new Set((e.payload.memberAssignment[topic] || []).map(Number));
  });
  await m.consumer.connect();
  await m.consumer.subscribe({ topic, fromBeginning: true });
  await m.consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      m.seen.push(message.value.toString());
      await m.consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }]);
    },
  });
  return m;
}

function exactlyOnce(members) {
  const owned = members.flatMap((m) => [...m.assigned]).sort((a, b) => a - b);
  return JSON.stringify(owned) === JSON.stringify([...Array(PARTITIONS).keys()]);
}

async function group(kafka, topic, count) {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
  await admin.disconnect();
  await produceRange(kafka, topic, 0, count);
  const groupId = 'group-' + topic;
  const members = [];
  for (let i = 0; i < 3; i++) members.push(await member(kafka, groupId, topic));
  await waitFor('three members', () => exactlyOnce(members) && members.every((m) => m.assigned.size > 0));
  await members[2].consumer.disconnect();
  await waitFor('two members to take over', () => exactlyOnce(members.slice(0, 2)));
  await waitFor('every record', () => new Set(members.flatMap((m) => m.seen)).size === count);
  for (const m of members.slice(0, 2)) await m.consumer.disconnect();
  await produceRange(kafka, topic, count, count);
  const again = await member(kafka, groupId, topic);
  const wanted = new Set();
  for (let i = count; i < 2 * count; i++) wanted.add(`value-${i}`);
  await waitFor('the restarted member', () => [...wanted].every((v) => again.seen.includes(v)));
  await sleep(1000);
  await again.consumer.disconnect();
  if (again.seen.length !== count) throw new Error(`redelivered: got ${again.seen.length}, wanted ${count}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
