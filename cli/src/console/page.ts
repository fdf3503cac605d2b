// The console's one page: plain HTML, CSS and a script (no build step), fed by the
// server's event stream (/api/stream, one state a second). It keeps a minute of I/O
// rates per gateway for the small plots.
export function consolePage(tracingUrl: string | undefined): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Strata console</title>
<style>
body{font:13px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:8px 16px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:16px;margin:0}#updated{opacity:.7}
main{display:grid;grid-template-columns:1fr 1fr;gap:12px;padding:12px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 12px;overflow:auto}
section.wide{grid-column:1/3}h2{font-size:13px;margin:2px 0 8px;text-transform:uppercase;letter-spacing:.04em;color:#5a6270}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3;white-space:nowrap}
th{font-weight:600;color:#5a6270}.alive,.up{color:#127a3a;font-weight:600}.dead,.down{color:#b3261e;font-weight:600}.unknown{color:#8a6d00}
.msg{white-space:normal}svg{vertical-align:middle}.err{color:#b3261e}
</style></head><body>
<header><h1>Strata</h1><span id="leader"></span><span id="updated">connecting…</span></header>
<main>
<section><h2>Nodes</h2><table id="nodes"></table><p id="hosts"></p></section>
<section><h2>Curator</h2><div id="curator"></div><h2>HA</h2><div id="ha"></div></section>
<section class="wide"><h2>vDisks</h2><table id="vdisks"></table></section>
<section class="wide"><h2>Processes</h2><table id="processes"></table></section>
<section class="wide"><h2>Events</h2><table id="events"></table></section>
</main>
<script>
const tracing = ${JSON.stringify(tracingUrl ?? null)};
const history = new Map();
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const row = (cells, tag = 'td') => '<tr>' + cells.map((c) => '<' + tag + '>' + c + '</' + tag + '>').join('') + '</tr>';
const bytes = (n) => n >= 2 ** 30 ? (n / 2 ** 30).toFixed(1) + ' GiB' : n >= 2 ** 20 ? (n / 2 ** 20).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B';
function plot(values) {
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => (i * 2) + ',' + (20 - (v / max) * 18).toFixed(1)).join(' ');
  return '<svg width="120" height="20"><polyline fill="none" stroke="#2f6fde" stroke-width="1.5" points="' + pts + '"/></svg>';
}
function traceLink(vdisk) {
  if (tracing === null) return '';
  const q = new URLSearchParams({ serviceName: 'gateway', annotationQuery: 'strata.vdisk.name=' + vdisk, lookback: '900000', limit: '20' });
  return ' <a href="' + tracing + '/zipkin/?' + q + '" target="_blank">traces</a>';
}
function eventTraceLink(e) {
  return tracing === null || e.traceId === null ? '' : ' <a href="' + tracing + '/zipkin/traces/' + esc(e.traceId) + '" target="_blank">trace</a>';
}
function render(s) {
  document.getElementById('leader').textContent = 'config leader ' + s.leader;
  document.getElementById('updated').textContent = 'updated ' + new Date(s.atMs).toLocaleTimeString();
  document.getElementById('nodes').innerHTML = row(['node', 'liveness', ''], 'th') +
    s.nodes.map((n) => row([esc(n.name), '<span class="' + esc(n.liveness) + '">' + esc(n.liveness) + '</span>', n.draining ? 'draining' : ''])).join('');
  document.getElementById('hosts').textContent = 'hosts (VMs run there): ' + (s.hosts.join(', ') || 'none');
  document.getElementById('vdisks').innerHTML = row(['vDisk', 'owner', 'epoch', 'volunteers', 'takeover', 'QoS', 'size', 'oplog backlog', 'replication lag', 'drain', ''], 'th') +
    s.vdisks.map((v) => row([esc(v.name), esc(v.owner ?? '(no I/O yet)'), v.epoch ?? '', esc(v.volunteers.join(', ')), esc(v.takeover ?? ''), esc(v.qos), bytes(v.sizeBytes),
      bytes(v.backlogBytes) + ' / ' + v.backlogEntries, v.lagSeconds.toFixed(1) + ' s', bytes(v.drainBytesPerSec) + '/s', traceLink(v.name)])).join('');
  for (const p of s.processes) {
    const h = history.get(p.name) ?? [];
    h.push(p.iops);
    if (h.length > 60) h.shift();
    history.set(p.name, h);
  }
  document.getElementById('processes').innerHTML = row(['process', 'metrics', 'health', 'NBD IOPS', 'last minute', 'admission queue'], 'th') +
    s.processes.map((p) => row([esc(p.name), esc(p.target), '<span class="' + (p.up ? 'up">up' : 'down">down') + '</span>', p.iops, plot(history.get(p.name)), p.queued])).join('');
  const c = s.curator;
  document.getElementById('curator').innerHTML = c.error !== undefined ? '<span class="err">' + esc(c.error) + '</span>' :
    'master ' + esc(c.master) + '; under-replicated extent groups ' + c.underReplicated + '; to copy ' + bytes(c.bytesToCopy) + ' at ' + bytes(c.bytesPerSec) + '/s' +
    (c.etaMs === null ? '' : ', done in ' + Math.round(c.etaMs / 1000) + ' s') + '; last scan ' + esc(c.lastScan ?? 'none');
  const ha = s.ha;
  document.getElementById('ha').innerHTML = ha.error !== undefined ? '<span class="err">' + esc(ha.error) + '</span>' :
    'master ' + esc(ha.master) + '<br>restart list: ' + (ha.restartList.map(esc).join('<br>') || 'empty') + '<br>wait list: ' + (ha.waitList.map(esc).join('<br>') || 'empty');
  document.getElementById('events').innerHTML = row(['time', 'event', 'reason'], 'th') +
    s.events.map((e) => row([new Date(e.atMs).toLocaleTimeString(), esc(e.type), '<span class="msg">' + esc(e.message) + '</span>' + eventTraceLink(e)])).join('');
}
const source = new EventSource('/api/stream');
source.onmessage = (m) => {
  const s = JSON.parse(m.data);
  if (s.error !== undefined) document.getElementById('updated').textContent = 'cannot read the cluster: ' + s.error;
  else render(s);
};
source.onerror = () => { document.getElementById('updated').textContent = 'disconnected; retrying'; };
</script></body></html>`;
}
