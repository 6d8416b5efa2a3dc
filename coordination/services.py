"""Moved: the use cases now live in `coordination.casework`, a module a group.
This module only re-exports them until every importer imports from there.
"""

from __future__ import annotations

from coordination.casework.access_log import (
    FAMILY_LOG_ACTIONS as FAMILY_LOG_ACTIONS,
)
from coordination.casework.access_log import (
    READS as READS,
)
from coordination.casework.access_log import (
    ROUTINE_LOOKS as ROUTINE_LOOKS,
)
from coordination.casework.access_log import (
    TRIED_TO_CHANGE as TRIED_TO_CHANGE,
)
from coordination.casework.access_log import (
    _detail as _detail,
)
from coordination.casework.access_log import (
    _grouped as _grouped,
)
from coordination.casework.access_log import (
    _log_item as _log_item,
)
from coordination.casework.access_log import (
    _refused_for_state as _refused_for_state,
)
from coordination.casework.access_log import (
    _split as _split,
)
from coordination.casework.access_log import (
    access_log as access_log,
)
from coordination.casework.access_log import (
    hide_from_family as hide_from_family,
)
from coordination.casework.common import (
    INVOLVEMENT as INVOLVEMENT,
)
from coordination.casework.common import (
    FamilyView as FamilyView,
)
from coordination.casework.common import (
    _as_date as _as_date,
)
from coordination.casework.common import (
    _audit as _audit,
)
from coordination.casework.common import (
    _involved as _involved,
)
from coordination.casework.common import (
    _load as _load,
)
from coordination.casework.common import (
    _lock_family as _lock_family,
)
from coordination.casework.common import (
    _visible as _visible,
)
from coordination.casework.common import (
    _visible_to as _visible_to,
)
from coordination.casework.common import (
    agencies as agencies,
)
from coordination.casework.common import (
    catalogue as catalogue,
)
from coordination.casework.common import (
    check_access as check_access,
)
from coordination.casework.common import (
    iso_time as iso_time,
)
from coordination.casework.common import (
    new_id as new_id,
)
from coordination.casework.common import (
    reference_errors as reference_errors,
)
from coordination.casework.consent_forms import (
    consent_errors as consent_errors,
)
from coordination.casework.consent_forms import (
    consent_history as consent_history,
)
from coordination.casework.consent_forms import (
    get_consent as get_consent,
)
from coordination.casework.consent_forms import (
    may_refer as may_refer,
)
from coordination.casework.consent_forms import (
    record_consent as record_consent,
)
from coordination.casework.consent_forms import (
    revoke_consent as revoke_consent,
)
from coordination.casework.consent_forms import (
    sees_whole_form as sees_whole_form,
)
from coordination.casework.entries import (
    MINIMAL_ENTRY_FIELDS as MINIMAL_ENTRY_FIELDS,
)
from coordination.casework.entries import (
    entry_errors as entry_errors,
)
from coordination.casework.entries import (
    write_entry as write_entry,
)
from coordination.casework.families import (
    MINIMAL_FAMILY_KEYS as MINIMAL_FAMILY_KEYS,
)
from coordination.casework.families import (
    SEARCH_LIMIT as SEARCH_LIMIT,
)
from coordination.casework.families import (
    create_family as create_family,
)
from coordination.casework.families import (
    family_errors as family_errors,
)
from coordination.casework.families import (
    search_families as search_families,
)
from coordination.casework.form_versions import (
    _family_extras as _family_extras,
)
from coordination.casework.form_versions import (
    _form_out as _form_out,
)
from coordination.casework.form_versions import (
    _form_view as _form_view,
)
from coordination.casework.form_versions import (
    _may_name_agency as _may_name_agency,
)
from coordination.casework.form_versions import (
    _reader as _reader,
)
from coordination.casework.form_versions import (
    _recorders as _recorders,
)
from coordination.casework.form_versions import (
    _write_sealed as _write_sealed,
)
from coordination.casework.involvements import (
    _active_staff as _active_staff,
)
from coordination.casework.involvements import (
    _contact_worker as _contact_worker,
)
from coordination.casework.involvements import (
    _involvement_out as _involvement_out,
)
from coordination.casework.involvements import (
    check_end_involvement as check_end_involvement,
)
from coordination.casework.involvements import (
    colleagues as colleagues,
)
from coordination.casework.involvements import (
    contact_worker_errors as contact_worker_errors,
)
from coordination.casework.involvements import (
    end_involvement as end_involvement,
)
from coordination.casework.involvements import (
    refer as refer,
)
from coordination.casework.involvements import (
    update_involvement as update_involvement,
)
from coordination.casework.record import (
    SharedRecord as SharedRecord,
)
from coordination.casework.record import (
    _entry_out as _entry_out,
)
from coordination.casework.record import (
    _members as _members,
)
from coordination.casework.record import (
    shared_record as shared_record,
)
