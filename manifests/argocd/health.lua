-- Argo CD health check for pynomaly.io/AnomalyDetector (resource.customizations.health.pynomaly.io_AnomalyDetector).
-- Argo CD sets the global `obj` to the live resource and reads back hs.status and hs.message.
-- Written for Argo CD's Lua (5.1 semantics): no integer division, no goto, no string methods on nil.
hs = {}

local function condition(status, wanted)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.message
  if text == nil or text == "" then
    text = fallback
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason .. ": " .. text
  end
  return text
end

local annotations = {}
if obj.metadata ~= nil and obj.metadata.annotations ~= nil then
  annotations = obj.metadata.annotations
end
if (obj.spec ~= nil and obj.spec.paused == true) or annotations["pynomaly.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (spec.paused); children are left as they are"
  return hs
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
if status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
local degraded = condition(status, "Degraded")
local progressing = condition(status, "Progressing")

-- A Ready condition stamped for an older generation says nothing about this one.
if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report generation " .. tostring(generation)
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(degraded, describe(ready, "The operator reports phase Failed"))
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "The operator reports Degraded")
  return hs
end
if status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = describe(ready, "The operator reports phase Degraded")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Rolling out")
  return hs
end
if ready ~= nil and ready.status == "False" and status.phase ~= "Pending" and status.phase ~= "Progressing" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end
hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the detector to become ready")
return hs
