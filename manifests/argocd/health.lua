-- Argo CD health check of korder.dev/Order: its kstatus conditions as Argo CD's health.
--
-- The operator summarises every phase in three conditions (korder/domain/conditions.py):
-- Stalled=True when the saga cannot go on without a person (a failed order, a step
-- stalled past the deadline waiting for a retry, or a compensation that was refused or
-- keeps failing past the deadline), Reconciling=True
-- while a step is in flight, Ready=True once the order is confirmed. Read as kstatus
-- reads them: Stalled wins, then Reconciling; an order at rest is Healthy, whether it is
-- confirmed, fulfilled, or cancelled as its client asked. A status older than the spec
-- (observedGeneration behind) is not an answer yet.
local hs = {status = "Progressing", message = "Waiting for the operator to see the order."}
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to see the latest change."
  return hs
end
local found = {}
for _, condition in ipairs(status.conditions) do
  found[condition.type] = condition
end
local function says(condition, otherwise)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return otherwise
end
local stalled, reconciling, ready = found["Stalled"], found["Reconciling"], found["Ready"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled, stalled.reason or "The order is stalled.")
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = says(reconciling, "The saga is at work.")
elseif ready ~= nil then
  hs.status = "Healthy"
  hs.message = says(ready, "The order is at rest.")
end
return hs
