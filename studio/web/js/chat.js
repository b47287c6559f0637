// The Chat tab: one conversation, or two side by side (the base and a tuned model) that
// get the same prompts and stream at the same time.

import { api, postJSON, decode, sse, el, fmt } from './api.js';

const $ = (id) => document.getElementById(id);

// A column is one conversation shown in one log.
class Column {
  constructor(log, head) {
    this.log = log;
    this.head = head;
    this.messages = []; // {role, content}, the history sent with each turn
    this.model = '';
  }

  clear() {
    this.messages = [];
    this.log.replaceChildren();
  }

  nearBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
  }

  addBubble(role, text) {
    const stick = this.nearBottom();
    const body = el('div', { class: 'text' }, text);
    const meta = el('div', { class: 'meta' });
    const bubble = el('div', { class: `msg ${role}` }, body, meta);
    this.log.append(bubble);
    if (stick) this.log.scrollTop = this.log.scrollHeight;
    return { bubble, body, meta };
  }

  // stream sends the history to model and shows the answer as it arrives.
  async stream(model, sampling, system, signal) {
    const { bubble, body, meta } = this.addBubble('assistant', '');
    bubble.classList.add('streaming');
    bubble.dataset.model = model;
    const text = document.createTextNode('');
    body.append(text);
    const messages = system ? [{ role: 'system', content: system }, ...this.messages] : [...this.messages];
    const started = performance.now();
    let usage = null, finish = '', failed = '';
    try {
      const res = await postJSON('/v1/chat/completions', { model, messages, stream: true, stream_options: { include_usage: true }, ...sampling }, { signal });
      if (!res.ok) await decode(res);
      for await (const data of sse(res)) {
        if (data === '[DONE]') break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        const delta = choice.delta?.content;
        if (delta) {
          const stick = this.nearBottom();
          text.appendData(delta);
          if (stick) this.log.scrollTop = this.log.scrollHeight;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    } catch (err) {
      failed = signal.aborted ? 'stopped' : err.message;
    }
    bubble.classList.remove('streaming');
    this.messages.push({ role: 'assistant', content: text.data });
    const secs = (performance.now() - started) / 1000;
    const parts = [model];
    if (usage) parts.push(`${usage.completion_tokens} tokens`, `${fmt(usage.completion_tokens / secs, 3)} tok/s`);
    if (finish) parts.push(finish);
    if (failed === 'stopped') { parts.push('stopped'); bubble.classList.add('stopped'); }
    else if (failed) { parts.push('error: ' + failed); bubble.classList.add('failed'); }
    meta.textContent = parts.join(' · ');
    bubble.classList.add('done');
  }

  // dropLastAnswer removes the last assistant turn, for regenerate.
  dropLastAnswer() {
    if (this.messages.at(-1)?.role !== 'assistant') return;
    this.messages.pop();
    const answers = this.log.querySelectorAll('.msg.assistant');
    answers[answers.length - 1]?.remove();
  }
}

export class Chat {
  constructor() {
    this.a = new Column($('log-a'), $('head-a'));
    this.b = new Column($('log-b'), $('head-b'));
    this.base = '';
    this.models = [];
    this.busy = null; // the AbortController of the turn in progress
    $('composer').addEventListener('submit', (ev) => { ev.preventDefault(); this.send(); });
    $('prompt').addEventListener('keydown', (ev) => {
      // Enter sends and Shift+Enter starts a new line; Ctrl/Cmd+Enter sends too.
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); this.send(); }
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.busy && !document.querySelector('dialog[open]')) { ev.preventDefault(); this.stop(); }
    });
    $('stop').addEventListener('click', () => this.stop());
    $('regen').addEventListener('click', () => this.regenerate());
    $('new-chat').addEventListener('click', () => { this.stop(); this.a.clear(); this.b.clear(); this.update(); });
    $('sbs').addEventListener('change', () => this.layout());
    $('model').addEventListener('change', () => this.layout());
  }

  // setModels fills the picker from GET /v1/models, keeping the choice when it still exists.
  setModels(list) {
    this.models = list;
    this.base = list.find((m) => !m.parent)?.id || list[0]?.id || '';
    const sel = $('model');
    const keep = sel.value;
    sel.replaceChildren(...list.map((m) => el('option', { value: m.id }, m.parent ? `${m.id} (adapter)` : `${m.id} (base)`)));
    if (list.some((m) => m.id === keep)) sel.value = keep;
    this.layout();
  }

  // use picks model in the picker (for "chat with the result"), reloading the list if needed.
  use(model) {
    const sel = $('model');
    if (![...sel.options].some((o) => o.value === model)) sel.append(el('option', { value: model }, `${model} (adapter)`));
    sel.value = model;
    this.layout();
    $('prompt').focus();
  }

  sideBySide() { return $('sbs').checked; }

  layout() {
    const sbs = this.sideBySide();
    let model = $('model').value;
    if (sbs && model === this.base) {
      // Side by side compares the base with something else: pick the first adapter.
      const other = this.models.find((m) => m.parent);
      if (other) { $('model').value = other.id; model = other.id; }
    }
    $('col-b').hidden = !sbs;
    $('columns').classList.toggle('two', sbs);
    this.a.head.textContent = sbs ? this.base : model;
    this.b.head.textContent = model;
    this.update();
  }

  sampling() {
    const num = (id) => { const v = $(id).value.trim(); return v === '' ? undefined : Number(v); };
    const s = { temperature: num('temperature'), top_p: num('top_p'), top_k: num('top_k'), max_tokens: num('max_tokens'), seed: num('seed') };
    for (const k of Object.keys(s)) if (s[k] === undefined || Number.isNaN(s[k])) delete s[k];
    return s;
  }

  // columns pairs each visible column with the model it talks to.
  columns() {
    const model = $('model').value;
    return this.sideBySide() ? [[this.a, this.base], [this.b, model]] : [[this.a, model]];
  }

  async send() {
    const prompt = $('prompt').value;
    if (this.busy || !prompt.trim()) return;
    $('prompt').value = '';
    for (const [col] of this.columns()) {
      col.messages.push({ role: 'user', content: prompt });
      col.addBubble('user', prompt);
    }
    await this.run();
  }

  async regenerate() {
    if (this.busy) return;
    for (const [col] of this.columns()) col.dropLastAnswer();
    await this.run();
  }

  async run() {
    const cols = this.columns().filter(([col]) => col.messages.at(-1)?.role === 'user');
    if (!cols.length) return;
    this.busy = new AbortController();
    this.update();
    const sampling = this.sampling();
    const system = $('system').value.trim();
    await Promise.all(cols.map(([col, model]) => col.stream(model, sampling, system, this.busy.signal)));
    this.busy = null;
    this.update();
    $('prompt').focus();
  }

  stop() { this.busy?.abort(); }

  update() {
    const busy = !!this.busy;
    $('send').disabled = busy;
    $('stop').disabled = !busy;
    $('regen').disabled = busy || !this.a.messages.some((m) => m.role === 'assistant');
    $('chat').classList.toggle('busy', busy);
  }
}

// loadModels reads GET /v1/models into the picker.
export async function loadModels(chat) {
  const res = await api('/v1/models');
  const body = await decode(res);
  chat.setModels(body.data || []);
  return body.data || [];
}
