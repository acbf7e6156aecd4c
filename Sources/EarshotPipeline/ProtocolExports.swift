// The feature catalogue (`Feature`) and the protocol's names live in EarshotProtocol; modules that use the
// pipeline see them without importing it themselves.
@_exported public import EarshotProtocol
