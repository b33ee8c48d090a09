// kafkajs.js drives kafkajs against a Kafka broker, for tests/kafkajs_test.go.
//
//   node kafkajs.js admin   BROKER TOPIC        create TOPIC (3 partitions), grow it to 4,
//                                               describe its configs, create and delete a scratch topic
//   node kafkajs.js produce BROKER TOPIC N      N messages with keys and headers, half gzip
//   node kafkajs.js consume BROKER TOPIC N GROUP  read N messages from the beginning in a group
//
// Results go to standard output as one JSON object a line; kafkajs logs
// (warnings and errors) to standard error. Any failure exits with status 1.
'use strict'

const { Kafka, logLevel, Partitioners, CompressionTypes, ConfigResourceTypes } = require('kafkajs')

const [mode, broker, topic, count, group] = process.argv.slice(2)

const kafka = new Kafka({
  clientId: 'ferry-kafkajs-test',
  brokers: [broker],
  connectionTimeout: 5000,
  requestTimeout: 10000,
  retry: { retries: 5, initialRetryTime: 100 },
  logLevel: logLevel.WARN,
  logCreator: () => ({ namespace, level, log }) => {
    process.stderr.write(`kafkajs ${namespace} ${level}: ${JSON.stringify(log)}\n`)
  }
})

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

async function admin () {
  const a = kafka.admin()
  await a.connect()
  try {
    const created = await a.createTopics({
      topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '86400000' }] }]
    })
    out({ created })
    await a.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
    const md = await a.fetchTopicMetadata({ topics: [topic] })
    out({ partitions: md.topics[0].partitions.length })
    const cfg = await a.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }]
    })
    const entries = {}
    for (const e of cfg.resources[0].configEntries) entries[e.configName] = e.configValue
    out({ configs: entries })
    await a.createTopics({ topics: [{ topic: topic + '-scratch' }] })
    await a.deleteTopics({ topics: [topic + '-scratch'] })
    out({ topics: (await a.listTopics()).sort() })
  } finally {
    await a.disconnect()
  }
}

async function produce () {
  const n = Number(count)
  const p = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await p.connect()
  try {
    const messages = []
    for (let i = 0; i < n; i++) {
      messages.push({ key: `k${i}`, value: `v${i}`, headers: { i: `${i}`, src: 'kafkajs' } })
    }
    const half = Math.floor(n / 2)
    const plain = await p.send({ topic, messages: messages.slice(0, half), acks: -1 })
    const gzip = await p.send({ topic, messages: messages.slice(half), acks: -1, compression: CompressionTypes.GZIP })
    out({ produced: n, results: plain.concat(gzip) })
  } finally {
    await p.disconnect()
  }
}

async function consume () {
  const n = Number(count)
  const c = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await c.connect()
  let seen = 0
  let done
  const finished = new Promise(resolve => { done = resolve })
  try {
    await c.subscribe({ topics: [topic], fromBeginning: true })
    await c.run({
      eachMessage: async ({ partition, message }) => {
        const headers = {}
        for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString()
        out({ partition, offset: message.offset, key: message.key && message.key.toString(), value: message.value.toString(), headers })
        if (++seen === n) done()
      }
    })
    await finished
  } finally {
    await c.disconnect()
  }
}

const modes = { admin, produce, consume }
if (!modes[mode]) {
  process.stderr.write(`unknown mode ${mode}: want admin, produce or consume\n`)
  process.exit(2)
}
modes[mode]().then(
  () => process.exit(0),
  err => {
    process.stderr.write(`${mode} failed: ${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  }
)
