defmodule ObjectStoreX.Summary do
  @moduledoc false
  # The summary maps that transfers give to `:on_complete` and return, built from what the
  # native side reports, with the one definition of their throughput.

  @type upload :: %{
          etag: String.t() | nil,
          version: String.t() | nil,
          bytes: non_neg_integer(),
          parts: non_neg_integer(),
          duration_us: non_neg_integer(),
          throughput_mb_s: float() | nil,
          digest: String.t() | nil
        }

  @type download :: %{
          bytes: non_neg_integer(),
          chunks: non_neg_integer(),
          duration_us: non_neg_integer(),
          throughput_mb_s: float() | nil,
          digest: String.t() | nil
        }

  @doc "An upload's summary, from the native `{etag, version, bytes, parts, us, digest}`."
  @spec upload(tuple()) :: upload()
  def upload({etag, version, bytes, parts, micros, digest}) do
    %{
      etag: etag,
      version: version,
      bytes: bytes,
      parts: parts,
      duration_us: micros,
      throughput_mb_s: throughput(bytes, micros),
      digest: digest
    }
  end

  @doc "A streamed download's summary, from the native `{bytes, chunks, us, digest}`."
  @spec download(tuple()) :: download()
  def download({bytes, chunks, micros, digest}) do
    %{
      bytes: bytes,
      chunks: chunks,
      duration_us: micros,
      throughput_mb_s: throughput(bytes, micros),
      digest: digest
    }
  end

  @doc "`download_file/4`'s summary, from the native `bytes`, `duration_us` and digest."
  @spec download_file(non_neg_integer(), non_neg_integer(), String.t() | nil) :: map()
  def download_file(bytes, micros, digest) do
    %{
      bytes: bytes,
      duration_us: micros,
      throughput_mb_s: throughput(bytes, micros),
      digest: digest
    }
  end

  @doc "Bytes per microsecond, which is MB/s, to one decimal; nil when no time was measured."
  @spec throughput(non_neg_integer(), non_neg_integer()) :: float() | nil
  def throughput(_bytes, 0), do: nil
  def throughput(bytes, micros), do: Float.round(bytes / micros, 1)
end
