'use strict';
// Driver for npm's fluent-logger (the original Node.js logger): sends the
// job's events (see common.js) through FluentSender and reports.
//
// What this logger puts on the wire (lib/sender.js, 3.4.1):
// - eventMode Message (the default): [tag, time, record] per event, plus
//   {"chunk": base64 of 16 random bytes} when requireAckResponse is set.
// - eventMode PackedForward / CompressedPackedForward: [tag, bin entries,
//   {"chunk", "size", "compressed": "text"|"gzip", "eventEntryDataSize"}]:
//   "size" is the BYTE length of the entries (of the gzip bytes when
//   compressed), not the event count, and the chunk option is sent even
//   without requireAckResponse (the ack is then never read).
// - time: an EventTime is packed as ext 0 (fixext 8, nanoseconds kept); a
//   plain number is sent as the integer it is.
// - acks: one chunk in flight per socket; the callbacks of a message run
//   once {"ack": chunk} came back and matches.
const {readJob, Tally, tlsOptions} = require('./common');
const logger = require('fluent-logger');

const job = readJob();
const opts = {
	eventMode: job.mode || 'Message',
	requireAckResponse: !!job.ack,
	ackResponseTimeout: job.deadline_ms || 30000,
	enableReconnect: false,
	internalLogger: {info() {}, error() {}},
	flushInterval: 20,
};
if (job.target.path)
	opts.path = job.target.path;
else {
	opts.host = job.target.host;
	opts.port = job.target.port;
}
// the handshake (TCP only, in this logger) and TLS
if (job.security)
	opts.security = {clientHostname: job.security.hostname,
	    sharedKey: job.security.key, username: job.security.username || '',
	    password: job.security.password || ''};
if (job.tls) {
	opts.tls = true;
	opts.tlsOptions = tlsOptions(job);
}
const sender = logger.createFluentSender(null, opts);
const tally = new Tally(job, () => new Promise((res) => sender.end(null, null, res)));
sender.on('error', (err) => {
	// an error for no one event (a refused or dropped connection): with
	// reconnection off, the events still waiting will never go
	if (tally.done)
		return;
	tally.errors.push('sender: ' + String(err && err.message || err));
	tally.finish(true);
});
for (const e of job.events) {
	const t = Array.isArray(e.time) ?
	    new logger.EventTime(e.time[0], e.time[1]) : e.time;
	tally.sent++;
	sender.emit(e.tag, e.record, t, (err) => tally.outcome(err));
}
