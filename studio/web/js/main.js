// Wires the three tabs together and loads what each needs.

import { Chat, loadModels } from './chat.js';
import { Train } from './train.js';
import { Runs } from './runs.js';

const $ = (id) => document.getElementById(id);

const chat = new Chat();
const train = new Train({ onChat: (model) => { select('chat'); refreshModels().then(() => chat.use(model)); } });
const runs = new Runs({ onJob: (id) => { select('train'); train.show(id); } });
const loaded = new Set();

async function refreshModels() {
  try {
    const models = await loadModels(chat);
    train.setBases(models);
    $('conn').textContent = `${models.length} model${models.length === 1 ? '' : 's'}`;
    $('conn').classList.remove('error');
  } catch (err) {
    $('conn').textContent = 'cannot list models: ' + err.message;
    $('conn').classList.add('error');
  }
}

function select(tab) {
  for (const b of document.querySelectorAll('[role=tab]')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  for (const p of document.querySelectorAll('[data-panel]')) p.hidden = p.dataset.panel !== tab;
  if (location.hash !== '#' + tab) history.replaceState(null, '', '#' + tab);
  if (!loaded.has(tab)) {
    loaded.add(tab);
    if (tab === 'train') train.refresh();
    if (tab === 'runs') runs.refresh();
  }
}

for (const b of document.querySelectorAll('[role=tab]')) b.addEventListener('click', () => select(b.dataset.tab));
$('reload-models').addEventListener('click', refreshModels);
select(['chat', 'train', 'runs'].includes(location.hash.slice(1)) ? location.hash.slice(1) : 'chat');
refreshModels().then(() => document.body.classList.add('ready'));

// On a phone the sampling settings start folded, so the conversation gets the screen.
if (matchMedia('(max-width: 760px)').matches) document.querySelector('.settings details').open = false;
