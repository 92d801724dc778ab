"""The ids Slack echoes back to us: action_ids, block_ids and the modal's callback_id,
shared by what we render (cards, the modal) and what we decode (payloads)."""

APPROVE = "access_approve"  # action_id of the Approve button; its value is the request id
DENY = "access_deny"
OPEN_FORM = "access_open_request_form"  # the button that opens the request modal
PICK_RESOURCE = "access_pick_resource"  # the modal's resource select
REQUEST_MODAL = "access_request_modal"  # callback_id of the modal
RESOURCE_BLOCK, DURATION_BLOCK, REASON_BLOCK = "resource", "duration", "reason"
FIELD_BLOCK = "field:"  # + a prompt field's name: its input on the modal (action_id "value")
