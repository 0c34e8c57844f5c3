"""The NGSI-LD context broker (ETSI GS CIM 009) under ``/ngsi-ld/v1``.

Internal entity form
--------------------
Entities are kept *expanded*: entity types and attribute names are full IRIs, so two requests
using different @contexts address the same attribute. Values are not expanded. One entity is::

    {
      "id": "urn:ngsi-ld:TrafficFlowObserved:zz-001",
      "type": ["https://smartdatamodels.org/dataModel.Transportation/TrafficFlowObserved"],
      "scope": ["/Zhengzhou/Jinshui"],                      # optional
      "createdAt": "2026-11-21T08:00:00Z", "modifiedAt": "...",
      "attrs": {
        "<attribute IRI>": [ <instance>, ... ]              # one per datasetId; the default
      },                                                    # instance has no "datasetId"
    }

An instance is a dict whose keys are either *core keys* (kept short, as in the core context:
``type`` — one of Property, Relationship, GeoProperty, LanguageProperty, JsonProperty,
VocabProperty, ListProperty, ListRelationship — and ``value``, ``object``, ``objectType``,
``languageMap``, ``json``, ``vocab``, ``valueList``, ``objectList``, ``observedAt``, ``unitCode``,
``datasetId``, ``createdAt``, ``modifiedAt``) or the IRI of a *sub-attribute*, whose value is one
instance dict of the same shape (sub-attributes have no datasetId instances).
"""
