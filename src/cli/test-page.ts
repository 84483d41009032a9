/** The page `duet serve` shows at `/`: try /echo and /chat from a browser. */
export const TEST_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>duet serve</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; } code { background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; }
  #log { border: 1px solid #ccc; border-radius: 6px; height: 16rem; overflow-y: auto; padding: .5rem; background: #fafafa; }
  #log div { white-space: pre-wrap; word-break: break-word; } .sys { color: #777; } .in { color: #0a5; } .out { color: #05a; }
  form { display: flex; gap: .5rem; margin-top: .5rem; } input[type=text] { flex: 1; padding: .4rem; }
  button, select { padding: .4rem .8rem; }
</style>
</head>
<body>
<h1>duet serve</h1>
<p>This server speaks WebSocket at <code>/echo</code> (every message comes back),
<code>/chat</code> (every message goes to everyone connected to <code>/chat</code>),
<code>/ticker</code> (a tick every second) and <code>/channel</code> (JSON topics with
recovery; try <code>{"type":"subscribe","topic":"chat"}</code>).</p>
<div>
  <select id="endpoint"><option>/chat</option><option>/echo</option><option>/ticker</option><option>/channel</option></select>
  <button id="connect">Connect</button> <button id="disconnect" disabled>Disconnect</button>
  <span id="state" class="sys">closed</span>
</div>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="text" type="text" placeholder="Type a message" autocomplete="off" disabled><button id="send" disabled>Send</button></form>
<script>
  const $ = (id) => document.getElementById(id);
  let ws = null;
  function log(text, cls) { const d = document.createElement('div'); d.textContent = text; d.className = cls; $('log').append(d); $('log').scrollTop = 1e9; }
  function setOpen(open) { $('text').disabled = $('send').disabled = $('disconnect').disabled = !open; $('connect').disabled = open; }
  $('connect').onclick = () => {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + $('endpoint').value;
    ws = new WebSocket(url);
    $('state').textContent = 'connecting';
    ws.onopen = () => { $('state').textContent = 'open: ' + url; setOpen(true); log('connected to ' + url, 'sys'); };
    ws.onmessage = (e) => log('< ' + e.data, 'in');
    ws.onclose = (e) => { $('state').textContent = 'closed'; setOpen(false); log('closed: code ' + e.code + (e.reason ? ' (' + e.reason + ')' : ''), 'sys'); };
  };
  $('disconnect').onclick = () => ws && ws.close(1000, 'bye');
  $('form').onsubmit = (e) => { e.preventDefault(); const t = $('text').value; if (!t || !ws) return; ws.send(t); log('> ' + t, 'out'); $('text').value = ''; };
</script>
</body>
</html>
`;
