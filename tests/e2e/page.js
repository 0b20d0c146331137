// Page-side helpers for tests/e2e (run in ComfyUI's frontend, in Chromium). page.py adds this file to every page
// with Playwright's add_init_script, so it runs before the frontend's own scripts; the functions below touch
// `app` / `LiteGraph` only when called, after the frontend is up. Python calls them as
//   page.evaluate("(a) => mofoPage.layout(a)", saved)   or   page.wait_for_function("() => mofoPage.settled(3)")
(() => {
  // -- network requests in flight (fetch and XHR), so a test can wait for the page to go quiet ----------------
  const pending = new Map();  // id -> url
  let nextId = 0;
  const track = url => {  // -> a function that marks the request done
    const id = nextId++;
    pending.set(id, String(url));
    return () => pending.delete(id);
  };
  const origFetch = window.fetch;
  window.fetch = function (input, init) {
    const done = track(input && input.url ? input.url : input);
    return origFetch.call(window, input, init).finally(done);
  };
  const origOpen = XMLHttpRequest.prototype.open, origSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.__mofoUrl = url;
    return origOpen.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...args) {
    this.addEventListener('loadend', track(this.__mofoUrl), {once: true});
    return origSend.apply(this, args);
  };

  let calm = {frames: 0, sig: null};  // see settled()
  const TOAST = ".p-toast-message, [data-testid='toast']";  // PrimeVue's (frontend 1.47), the Toaster's (1.5x)
  const node = sel => (typeof sel === 'number' || /^[0-9]+$/.test(sel) ? app.graph.getNodeById(sel)
                                                                     : app.graph._nodes.find(n => n.type === sel));

  window.mofoPage = {
    pendingRequests: () => [...pending.values()],

    instrument() {
      // execution events, progress text and the pack's warnings as the page received them
      window.__mofo = {events: [], clouds: [], progressText: [], warnings: []};
      const api = window.comfyAPI.api.api;
      for (const t of ['execution_start', 'execution_success', 'execution_error', 'execution_interrupted'])
        api.addEventListener(t, e => window.__mofo.events.push({type: t, detail: e.detail}));
      api.addEventListener('progress_text', e => window.__mofo.progressText.push(e.detail));
      api.addEventListener('mofo.warning', e => window.__mofo.warnings.push(e.detail));
      return true;
    },

    hookClouds() {
      // every point cloud the 3D viewer parses (read-only wrapper around its PLY adapter, a lazily loaded module)
      const A = window.comfyAPI.PointCloudModelAdapter && window.comfyAPI.PointCloudModelAdapter.PointCloudModelAdapter;
      if (!A) return false;
      if (A.prototype.load.__mofo) return true;
      const load = A.prototype.load;
      A.prototype.load = async function (...args) {
        const r = await load.apply(this, args);
        let points = 0;
        r.object.traverse(o => { if (o.isPoints) points += o.geometry.attributes.position.count; });
        window.__mofo.clouds.push({file: String(args[2]), points});
        return r;
      };
      A.prototype.load.__mofo = true;
      return true;
    },

    resetRun() {
      Object.assign(window.__mofo, {events: [], clouds: [], progressText: [], warnings: []});
    },

    drop([name, text]) {
      // what the browser does when a file is dragged from the desktop onto the canvas
      const dt = new DataTransfer();
      dt.items.add(new File([text], name, {type: 'application/json'}));
      const target = document.querySelector('#graph-canvas');
      const r = target.getBoundingClientRect();
      const opts = {bubbles: true, cancelable: true, dataTransfer: dt,
                    clientX: r.x + r.width / 2, clientY: r.y + r.height / 2};
      for (const t of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(t, opts));
    },

    dialogOpen: () => !!document.querySelector('.p-dialog-mask, [role="dialog"]'),

    state: () => ({
      nodes: app.graph._nodes.length,
      overlay: !!document.querySelector('[data-testid="error-overlay"]'),
      errorGroups: [...document.querySelectorAll('[data-testid^="error-group-"]')].map(e => e.dataset.testid),
      dialogs: [...document.querySelectorAll('.p-dialog, [role="dialog"], [role="alertdialog"]')]
        .filter(e => e.offsetParent !== null).map(e => e.innerText.slice(0, 300)),
    }),

    loaded([n, stem, sameTab]) {
      // the workflow file `stem` with n nodes is the active one (a new tab unless sameTab)
      const w = app.extensionManager.workflow.activeWorkflow;
      return !!w && (sameTab || w !== window.__mofoPrev) && w.filename.startsWith(stem) && app.graph._nodes.length === n;
    },

    layout(saved) {
      // saved: {node id: [w, h]} as stored in the workflow file (the frontend grows a too-small node on load)
      const g = app.graph, TH = LiteGraph.NODE_TITLE_HEIGHT, out = {small: [], overlaps: [], groups: [], combos: []};
      const box = n => [n.pos[0], n.pos[1] - TH, n.size[0], n.size[1] + TH];
      const inter = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
      const inside = (a, b) => a[0] >= b[0] && a[1] >= b[1] && a[0] + a[2] <= b[0] + b[2] && a[1] + a[3] <= b[1] + b[3];
      const name = n => `${n.id}:${n.title}`;
      for (const n of g._nodes) {
        const c = n.computeSize(), s = saved[n.id];
        if (s && (s[0] + 0.5 < c[0] || s[1] + 0.5 < c[1]))
          out.small.push(`${name(n)} saved ${s} < needed ${c.map(Math.ceil)}`);
        for (const w of n.widgets || []) {
          const vals = w.options && w.options.values;
          if (w.type === 'combo' && Array.isArray(vals) && !vals.includes(w.value))
            out.combos.push(`${name(n)}.${w.name} = ${JSON.stringify(w.value)} not in ${JSON.stringify(vals.slice(0, 8))}`);
        }
      }
      const ns = g._nodes;
      for (let i = 0; i < ns.length; i++) for (let j = i + 1; j < ns.length; j++)
        if (inter(box(ns[i]), box(ns[j]))) out.overlaps.push(`${name(ns[i])} / ${name(ns[j])}`);
      const ctx = document.createElement('canvas').getContext('2d');
      const gs = g._groups;
      for (let i = 0; i < gs.length; i++) {
        const gr = gs[i], b = [...gr._bounding], fs = gr.font_size || LiteGraph.DEFAULT_GROUP_FONT_SIZE || 24;
        ctx.font = `${fs}px ${LiteGraph.GROUP_FONT || 'Arial'}`;
        const need = ctx.measureText(gr.title).width + fs;
        if (need > b[2]) out.groups.push(`title "${gr.title}" needs ${Math.ceil(need)} px, group is ${b[2]}`);
        for (let j = i + 1; j < gs.length; j++)
          if (inter(b, gs[j]._bounding)) out.groups.push(`"${gr.title}" overlaps "${gs[j].title}"`);
        const body = [b[0], b[1] + TH, b[2], b[3] - TH];  // below the title bar
        for (const n of ns) {
          if (inside(box(n), body)) continue;
          if (inter(box(n), b)) out.groups.push(`${name(n)} crosses the border or title of "${gr.title}"`);
        }
      }
      return out;
    },

    swap(small) {
      // the tiny text path: CLIPLoader (ComfyUI's Qwen3-8B) -> Mofo Text Encoder Loader with the tiny HF Qwen3
      const g = app.graph;
      for (const clip of g._nodes.filter(n => n.type === 'CLIPLoader')) {
        const te = LiteGraph.createNode('MofoTextEncoderLoader');
        te.pos = [clip.pos[0], clip.pos[1]];
        g.add(te);
        te.widgets.find(w => w.name === 'folder').value = 'qwen3_tiny';
        te.widgets.find(w => w.name === 'dtype').value = 'fp32';
        const targets = (clip.outputs[0].links || []).map(id => g.links.get ? g.links.get(id) : g.links[id])
          .map(l => g.getNodeById(l.target_id));
        g.remove(clip);
        for (const n of targets) te.connect(0, n, n.findInputSlot('text_encoder'));
      }
      for (const n of g._nodes) for (const [k, v] of Object.entries(small[n.type] || {})) {
        const w = n.widgets.find(w => w.name === k);
        if (!w) throw new Error(`${n.type} has no widget ${k}`);
        w.value = v;
      }
      app.canvas.setDirty(true, true);
    },

    setWidget([id, name, value]) {
      const w = (app.graph.getNodeById(id).widgets || []).find(w => w.name === name);
      if (!w) throw new Error(`node ${id} has no widget ${name}`);
      w.value = value;
      app.canvas.setDirty(true, true);
    },

    // the node feeding input `input` of the first node of type `type` (e.g. the sampler's positive prompt)
    sourceOf([type, input]) {
      const g = app.graph, n = node(type), slot = n.inputs.find(i => i.name === input);
      const l = g.links.get ? g.links.get(slot.link) : g.links[slot.link];
      return l.origin_id;  // a number, or a numeric string (frontend 1.47 after a drop)
    },

    finished: () => window.__mofo.events
      .some(e => ['execution_success', 'execution_error', 'execution_interrupted'].includes(e.type))
      || (app.lastNodeErrors && Object.keys(app.lastNodeErrors).length > 0),

    images: types => app.graph._nodes.filter(n => types.includes(n.type)).map(n => ({
      id: n.id, type: n.type, title: n.title,
      imgs: (n.imgs || []).map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight,
                                      src: i.src})),
    })),

    nodeInfo: id => {
      const n = app.graph.getNodeById(id);
      return {title: n.title, type: n.type, mofoWarnings: n.mofoWarnings || null,
              widgets: (n.widgets || []).map(w => ({name: w.name, type: w.type,
                                                    value: typeof w.value === 'string' ? w.value.slice(0, 2000) : null}))};
    },

    progressShown(id) {
      // the progress text ComfyUI's frontend writes on node `id` (a text widget it adds), once the node has laid it
      // out inside itself (the next draw shows it); else null
      const n = app.graph.getNodeById(id), w = (n.widgets || []).find(w => w.name === '$$node-text-preview');
      if (!w || typeof w.value !== 'string' || !w.value) return null;
      const h = w.computedHeight;
      const inside = typeof w.y !== 'number' || typeof h !== 'number' || (w.y > 0 && w.y + h <= n.size[1] + 1);
      return inside ? w.value : null;
    },

    focus([sel, scale, dx, dy]) {
      // put node `sel` (a type, or an id) at (dx, dy) on screen at zoom `scale`
      const n = node(sel), ds = app.canvas.ds;
      ds.scale = scale;
      const r = app.canvas.canvas.getBoundingClientRect();
      ds.offset[0] = (dx - r.left) / scale - n.pos[0];
      ds.offset[1] = (dy - r.top) / scale - n.pos[1];
      app.canvas.setDirty(true, true);
    },

    nodeBox([sel, margin]) {
      // the screen rectangle of node `sel`, title bar included, plus a margin
      const n = node(sel), s = app.canvas.ds.scale, TH = LiteGraph.NODE_TITLE_HEIGHT;
      const [x, y] = app.canvasPosToClientPos([n.pos[0], n.pos[1] - TH]);
      return {x: x - margin, y: y - margin, width: n.size[0] * s + 2 * margin, height: (n.size[1] + TH) * s + 2 * margin};
    },

    markViewer() {
      // the 3D viewer's <canvas> is the one drawn over the Preview3D node
      document.querySelectorAll('canvas[data-mofo-viewer]').forEach(c => c.removeAttribute('data-mofo-viewer'));
      const n = node('Preview3D');
      const [x, y] = app.canvasPosToClientPos(n.pos), s = app.canvas.ds.scale;
      for (const c of document.querySelectorAll('canvas')) {
        if (c.id === 'graph-canvas' || c.classList.contains('minimap-canvas')) continue;
        const b = c.getBoundingClientRect(), cx = b.x + b.width / 2, cy = b.y + b.height / 2;
        if (b.width > 0 && cx > x && cx < x + n.size[0] * s && cy > y && cy < y + n.size[1] * s) {
          c.setAttribute('data-mofo-viewer', '1');
          return [b.x, b.y, b.width, b.height];
        }
      }
      return null;
    },

    closeupBox() {
      // the point cloud node and the 3D viewer node next to it
      const s = app.canvas.ds.scale, TH = LiteGraph.NODE_TITLE_HEIGHT;
      const a = node('MofoDepthToPointCloud'), b = node('Preview3D');
      const [x0, y0] = app.canvasPosToClientPos([a.pos[0], a.pos[1] - TH]);
      const [x1, y1] = app.canvasPosToClientPos([b.pos[0] + b.size[0],
                                                 Math.max(a.pos[1] + a.size[1], b.pos[1] + b.size[1])]);
      return {x: x0 - 20, y: y0 - 20, width: x1 - x0 + 40, height: y1 - y0 + 40};
    },

    graphBox() {
      // the screen rectangle around every node and group (plus a margin), inside the viewport
      const TH = LiteGraph.NODE_TITLE_HEIGHT;
      let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
      const add = (a, b, c, d) => {
        x0 = Math.min(x0, a); y0 = Math.min(y0, b); x1 = Math.max(x1, c); y1 = Math.max(y1, d);
      };
      for (const n of app.graph._nodes) add(n.pos[0], n.pos[1] - TH - 16, n.pos[0] + n.size[0], n.pos[1] + n.size[1]);
      for (const g of app.graph._groups) { const b = g._bounding; add(b[0], b[1], b[0] + b[2], b[1] + b[3]); }
      const [a, b] = app.canvasPosToClientPos([x0, y0]), [c, d] = app.canvasPosToClientPos([x1, y1]);
      const X = Math.max(0, a - 16), Y = Math.max(0, b - 16);
      return {x: X, y: Y, width: Math.min(innerWidth, c + 16) - X, height: Math.min(innerHeight, d + 16) - Y};
    },

    clearToasts() {
      // close every toast (frontend 1.47: PrimeVue's toast store; 1.5x: its own Toaster) so pictures show the graph
      const t = app.extensionManager.toast;
      if (t.dismissAll) t.dismissAll(); else if (t.removeAll) t.removeAll();
    },

    toastCount: () => document.querySelectorAll(TOAST).length,

    unsettle() { calm = {frames: 0, sig: null}; },

    settled(frames) {
      // true once the page has been still for `frames` polls in a row (poll once per animation frame): no graph
      // loading, no request in flight, the canvas drawn (not dirty) and sized to its box, the view unchanged
      const c = app.canvas, el = c.canvas, r = el.getBoundingClientRect(), dpr = Math.max(devicePixelRatio, 1);
      const CT = window.comfyAPI.changeTracker && window.comfyAPI.changeTracker.ChangeTracker;
      const sig = JSON.stringify([c.ds.scale, ...c.ds.offset, innerWidth, innerHeight, el.width, el.height]);
      const still = !(CT && CT.isLoadingGraph) && pending.size === 0 && !c.dirty_canvas && !c.dirty_bgcanvas
        && Math.abs(el.width - Math.round(r.width * dpr)) <= 1 && Math.abs(el.height - Math.round(r.height * dpr)) <= 1
        && sig === calm.sig;
      calm = {frames: still ? calm.frames + 1 : 0, sig};
      return calm.frames >= frames;
    },

    nextFrame: () => new Promise(resolve => requestAnimationFrame(() => resolve(true))),
  };
})();
