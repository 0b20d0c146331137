// ComfyUI-ModalityForcing: show the pack's warnings where the person looks (nodes/messages.py sends them).
// A `mofo.warning` event {node, message} becomes a toast; the node keeps a "⚠ n" mark until it runs again.
// Plain V1 frontend extension (app.registerExtension): works on year-old frontends and on 1.5x; without the
// toast API (very old frontends) the message goes to the browser console. The pack works without this file:
// the same text is also written on the node by ComfyUI itself (progress text) and kept in the history.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SUMMARY = "Modality Forcing";

function toast(message) {
  const t = app.extensionManager?.toast;
  if (t?.add) {
    t.add({ severity: "warn", summary: SUMMARY, detail: message, life: 12000 });
  } else {
    console.warn(`${SUMMARY}: ${message}`);
  }
}

function nodeById(id) {
  if (id === null || id === undefined) return null;
  const graph = app.graph;
  return graph?.getNodeById?.(Number(id)) ?? graph?.getNodeById?.(id) ?? null;
}

const NAME = "ModalityForcing.Warnings";

// Registered once, even if a ComfyUI serves this file under two folder names.
if (!(app.extensions ?? []).some((e) => e.name === NAME)) app.registerExtension({
  name: NAME,
  setup() {
    api.addEventListener("mofo.warning", ({ detail }) => {
      if (!detail?.message) return;
      toast(detail.message);
      const node = nodeById(detail.node);
      if (node) {
        node.mofoWarnings = [...(node.mofoWarnings ?? []), detail.message];
        node.setDirtyCanvas?.(true, true);
      }
    });
    api.addEventListener("execution_start", () => {
      for (const node of app.graph?._nodes ?? []) delete node.mofoWarnings;
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.category !== "ModalityForcing") return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      if (message?.mofo_warnings?.length) this.mofoWarnings = [...message.mofo_warnings];
    };
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      const n = this.mofoWarnings?.length;
      if (!n || this.flags?.collapsed) return;
      ctx.save();
      ctx.font = "bold 12px sans-serif";
      ctx.fillStyle = "#f0b429";
      ctx.textAlign = "right";
      ctx.fillText(`⚠ ${n}`, this.size[0] - 8, -8);
      ctx.restore();
    };
  },
});
