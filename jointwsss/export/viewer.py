"""Interactive 3D scene viewer: one self-contained, offline HTML file per evaluated scene, plus an index.

A scene page shows the mesh coloured by ground truth, prediction, error (right / wrong / ignored) or one
class's 3D CAM score (``vertex_score``), the class legend, the scene's per-class IoU, and the sampled
cameras as frustums; clicking a camera shows that frame's image | ground truth | prediction | 2D CAM panel.

Rendering is plotly.js (the copy bundled with the ``plotly`` PyPI package), inlined into every page, so a
page needs no network and no other file. To keep the pages small, the plotly bundle and the scene data are
zlib-compressed and base64-encoded; the page inflates them with the browser's ``DecompressionStream``.

Scene data (``scene_payload``), all arrays little-endian, base64 of the zlib-compressed bytes:

- ``xyz``: (V, 3) uint16, vertex coordinates quantised over the scene's bounding box:
  ``xyz = origin_m + q * step_m`` (``step_m`` = extent / 65535 per axis: < 0.2 mm for a 10 m room);
- ``faces``: (T, 3) uint32 vertex indices;
- ``gt``, ``pred``: (V,) uint8 class indices, 255 = none (``points/<scene>.zarr`` label and the
  predictions' ``vertex_label``);
- ``score``: (V, 20) uint8, ``round(vertex_score * 255)`` -- the level ``heat_colors`` uses;
- ``palette``: the 20 class colours and the ignore colour, ``heat``: the 256 JET colours of
  ``heat_colors``, ``error_colors``: right / wrong / ignored.

Scenes larger than ``max_vertices`` are decimated by vertex clustering on a voxel grid (``decimate_mesh``):
each occupied voxel keeps one real vertex (its labels and scores unchanged, so every colour is still an
exact palette colour) and faces collapsing to fewer than 3 distinct vertices are dropped.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jointwsss.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, palette
from jointwsss.export.images import heat_colors
from jointwsss.export.overlays import CamFunction, overlay_panel, spread_frames
from jointwsss.export.predictions import open_predictions
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import read_mesh_ply
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path
from jointwsss.metrics import confusion_matrix, miou_report

log = logging.getLogger("jointwsss")

MAX_VERTICES = 150_000        # larger meshes are decimated (a real ScanNet vh_clean_2 mesh has 50k-300k)
MAX_FRAMES = 30               # cameras drawn and clickable per scene, evenly spread over the kept frames
FRUSTUM_DEPTH_M = 0.3         # distance of a drawn frustum's image plane from its camera centre
PANEL_JPEG_QUALITY = 85
CLIP_PERCENT = 75             # initially hide faces above 75 % of the scene's height (ceilings), to see inside
PANEL_MAX_HEIGHT_PX = 240     # panels of larger frames are scaled down to this height

# Error colouring: right, wrong, ignored (ground truth outside the 20 classes).
ERROR_RIGHT, ERROR_WRONG, ERROR_IGNORED = 0, 1, 2
ERROR_COLORS = ((44, 160, 44), (214, 39, 40), (160, 160, 160))
ERROR_NAMES = ("right", "wrong", "ignored (no ground truth)")


def error_codes(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(N,) uint8: ERROR_IGNORED where gt is outside the 20 classes, else ERROR_RIGHT / ERROR_WRONG
    (a prediction of 255 on a labelled vertex is wrong, as in the benchmark)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    codes = np.where(gt == pred, ERROR_RIGHT, ERROR_WRONG).astype(np.uint8)
    codes[gt >= NUM_CLASSES] = ERROR_IGNORED
    return codes


def quantise_scores(scores: np.ndarray) -> np.ndarray:
    """(N, 20) uint8 heat levels ``round(clip(score, 0, 1) * 255)``: ``heat_colors(s) == heat_lut()[level]``."""
    return np.rint(np.clip(np.asarray(scores, np.float32), 0.0, 1.0) * 255).astype(np.uint8)


def heat_lut() -> np.ndarray:
    """(256, 3) uint8: the JET colour of each quantised score level (as ``heat_colors``)."""
    return heat_colors(np.arange(256, dtype=np.float32) / 255)


def decimate_mesh(xyz: np.ndarray, faces: np.ndarray, max_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: (kept vertex indices (V',) int64 ascending, faces (T', 3) int64 into the kept list).

    Returns all vertices and faces unchanged when ``len(xyz) <= max_vertices``. Otherwise the voxel size
    starts at 1 cm and doubles until at most ``max_vertices`` voxels are occupied; each voxel keeps its
    lowest-index vertex, faces are remapped to the kept vertices and those with a repeated vertex dropped.
    """
    n = len(xyz)
    if n <= max_vertices:
        return np.arange(n), np.asarray(faces, np.int64)
    voxel_m = 0.01
    while True:
        cells = np.floor((xyz - xyz.min(axis=0)) / voxel_m).astype(np.int64)
        _, first, cluster = np.unique(cells, axis=0, return_index=True, return_inverse=True)
        if len(first) <= max_vertices:
            break
        voxel_m *= 2
    cluster = cluster.ravel()
    order = np.argsort(first)                     # clusters in the order of their kept vertex
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    kept = first[order]
    new_faces = rank[cluster[np.asarray(faces, np.int64)]]
    distinct = ((new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2])
                & (new_faces[:, 0] != new_faces[:, 2]))
    return kept, new_faces[distinct]


def _pack(array: np.ndarray) -> str:
    """base64 of the zlib-compressed little-endian bytes of ``array`` (what the page's ``unpack`` reads)."""
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return base64.b64encode(zlib.compress(data.tobytes(), 9)).decode("ascii")


def unpack(text: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``_pack`` (for tests and tools reading a viewer's payload back)."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def _jpeg_data_uri(rgb: np.ndarray) -> str:
    if rgb.shape[0] > PANEL_MAX_HEIGHT_PX:
        scale = PANEL_MAX_HEIGHT_PX / rgb.shape[0]
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), PANEL_MAX_HEIGHT_PX), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, PANEL_JPEG_QUALITY])
    if not ok:
        raise OSError(f"cv2 could not encode a {rgb.shape} panel as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def frustum_corners(pose: np.ndarray, intrinsic: np.ndarray, size: tuple[int, int], depth_m: float) -> np.ndarray:
    """(5, 3) float64 world points of a camera drawn as a frustum: its centre, then the image corners
    (top-left, top-right, bottom-right, bottom-left pixel edges) on the plane ``depth_m`` in front of it.

    pose: (4, 4) camera-to-world; intrinsic: (4, 4) for an image of ``size`` = (W, H) pixels.
    """
    w, h = size
    fx, fy, cx, cy = intrinsic[0, 0], intrinsic[1, 1], intrinsic[0, 2], intrinsic[1, 2]
    corners = [(-0.5, -0.5), (w - 0.5, -0.5), (w - 0.5, h - 0.5), (-0.5, h - 0.5)]
    cam = np.array([[0.0, 0.0, 0.0]] + [[(u - cx) / fx * depth_m, (v - cy) / fy * depth_m, depth_m]
                                        for u, v in corners])
    pose = np.asarray(pose, np.float64)
    return cam @ pose[:3, :3].T + pose[:3, 3]


@dataclass
class SceneInputs:
    """Where one scene's viewer reads from."""
    scene: str
    mesh_ply: Path           # raw scans/<scene>/<scene>_vh_clean_2.ply
    points_store: Path       # cache points/<scene>.zarr
    frames_store: Path       # cache frames/<scene>.zarr


def scene_payload(inputs: SceneInputs, group, *, has_2d: bool, cam: CamFunction | None = None,
                  max_vertices: int = MAX_VERTICES, max_frames: int = MAX_FRAMES) -> dict:
    """The JSON-able data of one scene's page (see the module docstring); ``group``: the scene's h5 group."""
    mesh = read_mesh_ply(inputs.mesh_ply)
    gt = open_store(inputs.points_store, "points")["label"][...]
    pred = group["vertex_label"][...]
    score = group["vertex_score"][...]
    for name, values in (("ground-truth labels of " + str(inputs.points_store), gt), ("vertex_label", pred),
                         ("vertex_score", score)):
        if len(values) != mesh.num_vertices:
            raise DataFormatError(inputs.mesh_ply, f"has {mesh.num_vertices} vertices but {len(values)} {name}",
                                  "predictions, caches and mesh must be of one scene")
    kept, faces = decimate_mesh(mesh.xyz, mesh.faces, max_vertices)
    xyz = mesh.xyz[kept].astype(np.float64)
    origin = xyz.min(axis=0)
    step = np.maximum(xyz.max(axis=0) - origin, 1e-6) / 65535
    q = np.rint((xyz - origin) / step).astype(np.uint16)
    conf3d = confusion_matrix(gt, pred)

    frames = open_store(inputs.frames_store, "frames")
    frame_ids = frames["frame_id"][...]
    if has_2d and not np.array_equal(group["frame_id"][...], frame_ids):
        raise DataFormatError(inputs.frames_store, f"frame ids differ from those of the predictions of {inputs.scene}",
                              "re-run inference on this cache")
    cameras = []
    conf2d = np.zeros_like(conf3d)
    if len(frame_ids):
        size = (frames["color"].shape[2], frames["color"].shape[1])
        poses, intrinsic = frames["pose"][...], frames["intrinsic_color"][...]     # one (4, 4) per scene
        if has_2d:
            for f in range(len(frame_ids)):
                conf2d += confusion_matrix(frames["label"][f], group["frame_label"][f])
        for f in spread_frames(len(frame_ids), max_frames):
            color = frames["color"][f]
            frame_id = int(frame_ids[f])
            label = frames["label"][f]
            heat = None if cam is None else cam(inputs.scene, frame_id, color)
            pred2d = group["frame_label"][f] if has_2d else np.full_like(label, IGNORE_INDEX)
            panel = overlay_panel(color, label, pred2d, heat)
            cameras.append({"frame_id": frame_id,
                            "corners": np.round(frustum_corners(poses[f], intrinsic, size, FRUSTUM_DEPTH_M),
                                                4).tolist(),
                            "panel": _jpeg_data_uri(panel)})
    iou3d = miou_report(conf3d)
    iou2d = miou_report(conf2d) if has_2d and conf2d.any() else None
    return {
        "scene": inputs.scene,
        "num_vertices": int(len(kept)), "num_faces": int(len(faces)),
        "source_vertices": int(mesh.num_vertices), "source_faces": int(len(mesh.faces)),
        "origin_m": origin.tolist(), "step_m": step.tolist(),
        "xyz": _pack(q), "faces": _pack(faces.astype(np.uint32)),
        "gt": _pack(gt[kept].astype(np.uint8)), "pred": _pack(pred[kept].astype(np.uint8)),
        "score": _pack(quantise_scores(score[kept])),
        "class_names": list(CLASS_NAMES),
        "palette": palette()[list(range(NUM_CLASSES)) + [IGNORE_INDEX]].tolist(),
        "heat": heat_lut().tolist(),
        "error_colors": [list(c) for c in ERROR_COLORS], "error_names": list(ERROR_NAMES),
        "iou": {"3d": iou3d["per_class"], "3d_miou": iou3d["miou"],
                "2d": None if iou2d is None else iou2d["per_class"],
                "2d_miou": None if iou2d is None else iou2d["miou"]},
        "clip_percent": CLIP_PERCENT,
        "cam_2d": cam is not None, "pred_2d": has_2d,
        "cameras": cameras,
    }


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}{script}</body></html>\n")


def plotly_bundle() -> str:
    """plotly.js as shipped in the ``plotly`` package (offline), zlib-compressed and base64-encoded."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(zlib.compress(get_plotlyjs().encode("utf-8"), 9)).decode("ascii")


def scene_html(payload: dict, plotly_b64: str) -> str:
    """The self-contained page of one scene (its payload and plotly.js inlined)."""
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    body = _SCENE_BODY.replace("%SCENE%", html.escape(payload["scene"]))
    script = (f"<script id=\"plotly-z\" type=\"application/octet-stream\">{plotly_b64}</script>"
              f"<script id=\"scene-data\" type=\"application/json\">{data}</script><script>{_SCENE_JS}</script>")
    return _page(f"{payload['scene']} -- jointwsss viewer", body, script)


def index_html(experiment: str, rows: list[dict]) -> str:
    """The index page: one row per scene (link, vertices, cameras, 3D mIoU, file size)."""
    lines = []
    for r in rows:
        miou = "" if r["miou_3d"] is None else f"{100 * r['miou_3d']:.1f}"
        lines.append(f"<tr><td><a href=\"{html.escape(r['file'])}\">{html.escape(r['scene'])}</a></td>"
                     f"<td>{r['vertices']:,}</td><td>{r['cameras']}</td><td>{miou}</td>"
                     f"<td>{r['megabytes']:.1f}</td></tr>")
    body = (f"<h1>jointwsss scene viewer: {html.escape(experiment)}</h1>"
            "<p>Each page opens offline in a browser (plotly.js inlined). Drag to turn the scene, scroll to zoom, "
            "click a camera to see its frame.</p>"
            "<table class=\"iou\"><tr><th>scene</th><th>vertices shown</th><th>cameras</th><th>3D mIoU %</th>"
            "<th>MB</th></tr>" + "".join(lines) + "</table>")
    return _page(f"{experiment} -- jointwsss viewer", body)


def write_viewers(pred_h5: Path, cache_dir: Path, scans_dir: Path, out_dir: Path, *, cam: CamFunction | None = None,
                  max_vertices: int = MAX_VERTICES, max_frames: int = MAX_FRAMES,
                  progress: Callable[[str], None] | None = None) -> list[Path]:
    """Write ``<out_dir>/<scene>.html`` for every scene of ``pred_h5`` (3D predictions needed) and
    ``<out_dir>/index.html``; returns the scene pages' paths, then the index's. Each file is atomic."""
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    plotly_b64 = plotly_bundle()
    written, rows = [], []
    with open_predictions(pred_h5, "3d") as h5:
        experiment = str(h5.attrs.get("experiment", ""))
        has_2d = bool(h5.attrs.get("has_2d", False))
        for scene in h5:
            inputs = SceneInputs(scene, Path(scans_dir) / scene / f"{scene}_vh_clean_2.ply",
                                 store_path(cache_dir, "points", scene), store_path(cache_dir, "frames", scene))
            payload = scene_payload(inputs, h5[scene], has_2d=has_2d, cam=cam, max_vertices=max_vertices,
                                    max_frames=max_frames)
            text = scene_html(payload, plotly_b64)
            path = out_dir / f"{scene}.html"
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(path)
            rows.append({"scene": scene, "file": path.name, "vertices": payload["num_vertices"],
                         "cameras": len(payload["cameras"]), "miou_3d": payload["iou"]["3d_miou"],
                         "megabytes": len(text.encode("utf-8")) / 1e6})
            if progress is not None:
                progress(f"{scene}: {payload['num_vertices']:,} of {payload['source_vertices']:,} vertices, "
                         f"{len(payload['cameras'])} cameras, {rows[-1]['megabytes']:.2f} MB")
    index = out_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(index_html(experiment, rows), encoding="utf-8")
    return written + [index]


_CSS = """
body{font-family:sans-serif;margin:8px;color:#222}
#main{display:flex;gap:8px}#left{width:calc(100vw - 330px);min-width:400px}#plot{width:100%;height:62vh}
#side{width:300px;font-size:12px}#controls{margin:4px 0}
#controls button{margin-right:2px}#controls button.on{background:#345;color:#fff}
table.iou{border-collapse:collapse;font-size:12px}table.iou td,table.iou th{border:1px solid #ccc;padding:1px 5px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;border:1px solid #888}
#legend div{white-space:nowrap}#panel img{width:100%;max-width:800px;image-rendering:pixelated}
"""

_SCENE_BODY = """
<h2>%SCENE%</h2>
<div id="controls">colour by
<button id="mode-gt" data-mode="gt">ground truth</button><button id="mode-pred" data-mode="pred">prediction</button>
<button id="mode-error" data-mode="error">error</button><button id="mode-cam" data-mode="cam">3D CAM of</button>
<select id="cam-class"></select>
&nbsp; hide above <input id="clip" type="range" min="0" max="100" value="100"> <span id="clip-m"></span>
<span id="status">loading…</span></div>
<div id="main"><div id="left"><div id="plot"></div>
<div id="panel"><p>Click a camera (orange) to see its frame: image | ground truth | prediction | 2D CAM.</p></div></div>
<div id="side"><div id="legend"></div><h4>per-class IoU of this scene (%)</h4>
<table class="iou" id="iou"></table></div></div>
"""

# The page's program: inflate plotly and the data, draw the mesh and the cameras, wire the controls.
_SCENE_JS = r"""
async function inflate(b64){
  const bytes=Uint8Array.from(atob(b64),c=>c.charCodeAt(0));
  const stream=new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return await new Response(stream).arrayBuffer();
}
const D=JSON.parse(document.getElementById('scene-data').textContent);
const V=D.num_vertices;
function rgb(c){return 'rgb('+c[0]+','+c[1]+','+c[2]+')';}
let A={},Z=null,F=null;
// vertex colours of a mode as plotly colour strings (window.viewerColors: used by the browser test too)
window.viewerColors=function(mode,cls){
  const out=new Array(V);
  if(mode==='gt'||mode==='pred'){const lab=A[mode];for(let i=0;i<V;i++)out[i]=rgb(D.palette[lab[i]<20?lab[i]:20]);}
  else if(mode==='error'){for(let i=0;i<V;i++){const g=A.gt[i];
    out[i]=rgb(D.error_colors[g>=20?2:(g===A.pred[i]?0:1)]);}}
  else{for(let i=0;i<V;i++)out[i]=rgb(D.heat[A.score[i*20+cls]]);}
  return out;
};
function legend(mode,cls){
  const el=document.getElementById('legend');let h='';
  if(mode==='gt'||mode==='pred'){D.class_names.forEach((n,i)=>{h+='<div><span class="sw" style="background:'+rgb(D.palette[i])+'"></span>'+i+' '+n+'</div>';});
    h+='<div><span class="sw" style="background:'+rgb(D.palette[20])+'"></span>none / ignored</div>';}
  else if(mode==='error'){D.error_names.forEach((n,i)=>{h+='<div><span class="sw" style="background:'+rgb(D.error_colors[i])+'"></span>'+n+'</div>';});}
  else{h='<div>3D CAM score of <b>'+D.class_names[cls]+'</b> (vertex_score)</div><div style="height:12px;width:200px;background:linear-gradient(to right,'+
    [0,64,128,192,255].map(l=>rgb(D.heat[l])).join(',')+')"></div><div>0 &nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp; 1</div>';}
  el.innerHTML=h;
}
function iouTable(){
  const pct=v=>v===null||v===undefined?'':(100*v).toFixed(1);
  let h='<tr><th>class</th><th>3D</th>'+(D.iou['2d']?'<th>2D</th>':'')+'</tr>';
  D.class_names.forEach(n=>{const a=D.iou['3d'][n],b=D.iou['2d']?D.iou['2d'][n]:null;
    if(a===null&&b===null)return;
    h+='<tr><td>'+n+'</td><td>'+pct(a)+'</td>'+(D.iou['2d']?'<td>'+pct(b)+'</td>':'')+'</tr>';});
  h+='<tr><th>mIoU</th><th>'+pct(D.iou['3d_miou'])+'</th>'+(D.iou['2d']?'<th>'+pct(D.iou['2d_miou'])+'</th>':'')+'</tr>';
  document.getElementById('iou').innerHTML=h;
}
window.viewerMode='gt';
window.setColoring=function(mode,cls){
  if(cls===undefined)cls=+document.getElementById('cam-class').value;
  document.getElementById('cam-class').value=String(cls);
  window.viewerMode=mode;
  document.querySelectorAll('#controls button').forEach(b=>b.classList.toggle('on',b.dataset.mode===mode));
  legend(mode,cls);
  return Plotly.restyle('plot',{vertexcolor:[window.viewerColors(mode,cls)]},[0]).then(()=>true);
};
// faces whose three vertices lie at most clip_m high (to look into a room from above)
function facesBelow(clip_m){
  const keep=[];for(let t=0;t<D.num_faces;t++){if(Z[F[3*t]]<=clip_m&&Z[F[3*t+1]]<=clip_m&&Z[F[3*t+2]]<=clip_m)keep.push(t);}
  const I=new Uint32Array(keep.length),J=new Uint32Array(keep.length),K=new Uint32Array(keep.length);
  keep.forEach((t,n)=>{I[n]=F[3*t];J[n]=F[3*t+1];K[n]=F[3*t+2];});
  return [I,J,K];
}
function clipAt(percent){
  const z0=D.origin_m[2],z1=D.origin_m[2]+65535*D.step_m[2],clip=z0+(z1-z0)*percent/100+1e-6;
  document.getElementById('clip').value=String(percent);
  document.getElementById('clip-m').textContent=(clip-z0).toFixed(2)+' m';
  return facesBelow(clip);
}
window.setClip=function(percent){const f=clipAt(percent);return Plotly.restyle('plot',{i:[f[0]],j:[f[1]],k:[f[2]]},[0]).then(()=>true);};
function showFrame(k){
  const c=D.cameras[k];if(!c)return;
  const cols='image | ground truth | '+(D.pred_2d?'prediction':'(no 2D prediction)')+(D.cam_2d?' | 2D CAM (max class score)':'');
  document.getElementById('panel').innerHTML='<p>frame '+c.frame_id+': '+cols+'</p><img id="panel-img" src="'+c.panel+'">';
  window.viewerFrame=c.frame_id;
}
async function main(){
  const t0=performance.now();
  const js=new TextDecoder().decode(await inflate(document.getElementById('plotly-z').textContent));
  const s=document.createElement('script');s.textContent=js;document.head.appendChild(s);
  const t1=performance.now();
  const q=new Uint16Array(await inflate(D.xyz));F=new Uint32Array(await inflate(D.faces));
  A.gt=new Uint8Array(await inflate(D.gt));A.pred=new Uint8Array(await inflate(D.pred));
  A.score=new Uint8Array(await inflate(D.score));
  const x=new Float32Array(V),y=new Float32Array(V),z=new Float32Array(V);
  for(let i=0;i<V;i++){x[i]=D.origin_m[0]+q[3*i]*D.step_m[0];y[i]=D.origin_m[1]+q[3*i+1]*D.step_m[1];z[i]=D.origin_m[2]+q[3*i+2]*D.step_m[2];}
  Z=z;
  const [I,J,K]=clipAt(D.clip_percent);
  const sel=document.getElementById('cam-class');
  D.class_names.forEach((n,i)=>{const o=document.createElement('option');o.value=String(i);o.textContent=n;sel.appendChild(o);});
  const lx=[],ly=[],lz=[],cx=[],cy=[],cz=[],ct=[];
  const edges=[[0,1],[0,2],[0,3],[0,4],[1,2],[2,3],[3,4],[4,1]];
  D.cameras.forEach((c,k)=>{edges.forEach(e=>{[e[0],e[1]].forEach(p=>{lx.push(c.corners[p][0]);ly.push(c.corners[p][1]);lz.push(c.corners[p][2]);});
      lx.push(null);ly.push(null);lz.push(null);});
    cx.push(c.corners[0][0]);cy.push(c.corners[0][1]);cz.push(c.corners[0][2]);ct.push('frame '+c.frame_id);});
  const mesh={type:'mesh3d',x:x,y:y,z:z,i:I,j:J,k:K,vertexcolor:window.viewerColors('gt',0),hoverinfo:'skip',
    flatshading:false,lighting:{ambient:0.85,diffuse:0.3,specular:0.02,roughness:0.9},name:'mesh'};
  const lines={type:'scatter3d',mode:'lines',x:lx,y:ly,z:lz,line:{color:'rgb(255,127,14)',width:3},hoverinfo:'skip',name:'frustums'};
  const cams={type:'scatter3d',mode:'markers',x:cx,y:cy,z:cz,text:ct,hoverinfo:'text',marker:{size:5,color:'rgb(255,127,14)'},name:'cameras'};
  const layout={margin:{l:0,r:0,t:0,b:0},showlegend:false,paper_bgcolor:'#fff',
    scene:{aspectmode:'data',xaxis:{visible:false},yaxis:{visible:false},zaxis:{visible:false},
      camera:{eye:{x:0.7,y:-1.1,z:1.5},up:{x:0,y:0,z:1}}}};
  const t2=performance.now();
  await Plotly.newPlot('plot',[mesh,lines,cams],layout,{displaylogo:false,responsive:true});
  // milliseconds since navigation start / spent loading plotly.js / decoding the scene / drawing it
  window.viewerTimings={ready_ms:Math.round(performance.now()),plotly_ms:Math.round(t1-t0),
    data_ms:Math.round(t2-t1),plot_ms:Math.round(performance.now()-t2)};
  document.getElementById('plot').on('plotly_click',ev=>{const p=ev.points[0];if(p&&p.curveNumber===2)showFrame(p.pointNumber);});
  document.querySelectorAll('#controls button').forEach(b=>b.addEventListener('click',()=>window.setColoring(b.dataset.mode)));
  sel.addEventListener('change',()=>window.setColoring('cam',+sel.value));
  document.getElementById('clip').addEventListener('change',e=>window.setClip(+e.target.value));
  window.showFrame=showFrame;
  legend('gt',0);iouTable();
  document.querySelector('#mode-gt').classList.add('on');
  document.getElementById('status').textContent=V.toLocaleString()+' vertices, '+D.cameras.length+' cameras';
  window.viewerReady=true;
}
main().catch(e=>{document.getElementById('status').textContent='error: '+e;console.error(e);});
"""
