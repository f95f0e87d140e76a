//! Prometheus remote-write 1.0 messages (`prometheus/prompb/types.proto` and `remote.proto`,
//! the fields a sender fills), for the collector's remote-write export and the receivers in
//! its tests. The body on the wire is [`encode_write_request`]'s bytes, snappy
//! block-compressed by the sender.

use prost::Message;

/// `prometheus.WriteRequest`: the series of one request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one series' labels (sorted by name) and samples (in time order).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a time in milliseconds since the epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The protobuf bytes of `request` (not yet compressed).
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    request.encode_to_vec()
}

/// A request read back from its protobuf bytes (already decompressed); the error says what
/// is wrong with them.
pub fn decode_write_request(bytes: &[u8]) -> Result<WriteRequest, String> {
    WriteRequest::decode(bytes).map_err(|error| format!("not a remote-write request: {error}"))
}
