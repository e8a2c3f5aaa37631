defmodule ObjectStoreX.Sync.Checkpoint do
  @moduledoc false
  # The checkpoint file of ObjectStoreX.Sync: a header naming the sync, then one line per event,
  # appended as it happens:
  #
  #     objectstorex-sync 1 FINGERPRINT
  #     D KEY CRC    the object KEY is done (copied, or found equal)
  #     F KEY CRC    the object KEY failed in this run
  #     M KEY CRC    every source key up to KEY (inclusive) is done or recorded failed
  #     S KEY ETAG CRC   a multipart copy of KEY began, from the source version ETAG
  #     E - CRC      the run completed: the next run with this file starts afresh
  #
  # KEY is percent-encoded (no spaces or newlines), CRC the CRC-32 of "T KEY" in hex. A line
  # without its newline is the torn last write of a killed run: ignored, and cut off before the
  # next run appends. Any other malformed line is corruption, reported with the file and line.
  #
  # Memory: loading keeps the last mark, the keys done above it (work completed out of order,
  # bounded by what was in flight), the keys failed, and the multipart copies begun and not
  # finished (bounded by what was in flight).

  alias ObjectStoreX.Error

  @magic "objectstorex-sync 1 "

  defstruct mark: nil, done: MapSet.new(), failed: MapSet.new(), started: %{}, ended: false

  @type t :: %__MODULE__{
          mark: String.t() | nil,
          done: MapSet.t(String.t()),
          failed: MapSet.t(String.t()),
          started: %{String.t() => String.t()},
          ended: boolean()
        }

  @doc "Whether the key was completed by an earlier run, per the loaded state."
  @spec done?(t(), String.t()) :: boolean()
  def done?(%__MODULE__{} = state, key) do
    MapSet.member?(state.done, key) or
      (state.mark != nil and key <= state.mark and not MapSet.member?(state.failed, key))
  end

  @doc """
  Reads `path` (a missing file is an empty checkpoint) and opens it for appending. Returns
  `{:ok, state, io_device}` or an error naming the file.
  """
  @spec open(Path.t(), String.t()) :: {:ok, t(), :file.io_device()} | {:error, Error.t()}
  def open(path, fingerprint) do
    with {:ok, state, valid_bytes} <- load(path, fingerprint),
         {:ok, io} <- append(path, keep(state, valid_bytes, fingerprint), fingerprint) do
      {:ok, %{state | ended: false}, io}
    end
  end

  # After a completed run only the header is kept.
  defp keep(%__MODULE__{ended: true}, valid_bytes, fingerprint),
    do: min(valid_bytes, byte_size(@magic <> fingerprint <> "\n"))

  defp keep(_state, valid_bytes, _fingerprint), do: valid_bytes

  @doc "Reads the state a checkpoint file records (without opening it for writing)."
  @spec read(Path.t(), String.t()) :: {:ok, t()} | {:error, Error.t()}
  def read(path, fingerprint) do
    with {:ok, state, _} <- load(path, fingerprint), do: {:ok, state}
  end

  defp load(path, fingerprint) do
    case File.stat(path) do
      {:error, :enoent} ->
        {:ok, %__MODULE__{}, 0}

      {:ok, %File.Stat{type: :regular}} ->
        read_lines(path, fingerprint)

      {:ok, %File.Stat{type: type}} ->
        bad(path, "is not a regular file (#{type})")

      {:error, reason} ->
        bad(path, "cannot be read: #{:file.format_error(reason)}")
    end
  end

  defp read_lines(path, fingerprint) do
    File.stream!(path, [], :line)
    |> Stream.with_index(1)
    |> Enum.reduce_while({:ok, %__MODULE__{}, 0}, fn {line, n}, {:ok, state, bytes} ->
      cond do
        # A first line without its newline must be the start of the header (torn as the file
        # was created), or this is some other file, which must not be overwritten.
        n == 1 and not String.ends_with?(line, "\n") ->
          if String.starts_with?(@magic <> fingerprint <> "\n", line),
            do: {:halt, {:ok, state, 0}},
            else: {:halt, bad(path, "is not an ObjectStoreX sync checkpoint")}

        # Only the last line can lack its newline: the torn write of a killed run.
        not String.ends_with?(line, "\n") ->
          {:halt, {:ok, state, bytes}}

        n == 1 ->
          case line do
            @magic <> rest when rest == fingerprint <> "\n" ->
              {:cont, {:ok, state, byte_size(line)}}

            @magic <> _ ->
              {:halt, bad(path, "records a sync of other stores or prefixes; use another file")}

            _ ->
              {:halt, bad(path, "is not an ObjectStoreX sync checkpoint")}
          end

        true ->
          case record(line) do
            # A completed run: what it recorded is no longer needed.
            {:ok, "E", _} ->
              {:cont, {:ok, %__MODULE__{ended: true}, bytes + byte_size(line)}}

            {:ok, type, key} ->
              {:cont, {:ok, apply_record(state, type, key), bytes + byte_size(line)}}

            :error ->
              {:halt, bad(path, "is corrupt at line #{n}")}
          end
      end
    end)
  rescue
    e in [File.Error, UnicodeConversionError, ArgumentError] ->
      bad(path, "cannot be read: #{Exception.message(e)}")
  end

  defp record(line) do
    case String.split(String.trim_trailing(line, "\n"), " ") do
      [type, encoded, crc] when type in ["D", "F", "M", "E"] ->
        with true <- crc == crc("#{type} #{encoded}"),
             {:ok, key} <- decode(encoded),
             do: {:ok, type, key},
             else: (_ -> :error)

      ["S", encoded, encoded_etag, crc] ->
        with true <- crc == crc("S #{encoded} #{encoded_etag}"),
             {:ok, key} <- decode(encoded),
             {:ok, etag} <- decode(encoded_etag),
             do: {:ok, "S", {key, etag}},
             else: (_ -> :error)

      _ ->
        :error
    end
  end

  defp decode(encoded) do
    key = URI.decode(encoded)
    if String.valid?(key), do: {:ok, key}, else: :error
  rescue
    ArgumentError -> :error
  end

  defp apply_record(state, "S", {key, etag}),
    do: %{state | started: Map.put(state.started, key, etag)}

  defp apply_record(state, "D", key) do
    state = %{state | started: Map.delete(state.started, key)}
    failed = MapSet.delete(state.failed, key)

    if state.mark != nil and key <= state.mark,
      do: %{state | failed: failed},
      else: %{state | failed: failed, done: MapSet.put(state.done, key)}
  end

  defp apply_record(state, "F", key) do
    %{
      state
      | failed: MapSet.put(state.failed, key),
        done: MapSet.delete(state.done, key),
        started: Map.delete(state.started, key)
    }
  end

  defp apply_record(state, "M", key) do
    %{state | mark: key, done: MapSet.reject(state.done, &(&1 <= key))}
  end

  # Cuts a torn last line off (so the next record starts a line of its own), writing the
  # header to a new file.
  defp append(path, valid_bytes, fingerprint) do
    with :ok <- mkdir(path),
         {:ok, io} <- file_open(path) do
      result =
        if valid_bytes == 0 do
          with :ok <- :file.truncate(io) |> ok_or(path),
               do: :file.write(io, @magic <> fingerprint <> "\n") |> ok_or(path)
        else
          with {:ok, _} <- :file.position(io, valid_bytes) |> ok_or(path),
               do: :file.truncate(io) |> ok_or(path)
        end

      case result do
        :ok ->
          {:ok, io}

        error ->
          :file.close(io)
          error
      end
    end
  end

  defp mkdir(path) do
    case File.mkdir_p(Path.dirname(path)) do
      :ok -> :ok
      {:error, reason} -> bad(path, "cannot be created: #{:file.format_error(reason)}")
    end
  end

  defp file_open(path) do
    case :file.open(path, [:read, :write, :binary, :raw]) do
      {:ok, io} -> {:ok, io}
      {:error, reason} -> bad(path, "cannot be opened: #{:file.format_error(reason)}")
    end
  end

  defp ok_or(:ok, _path), do: :ok
  defp ok_or({:ok, _} = ok, _path), do: ok
  defp ok_or({:error, reason}, path), do: bad(path, "cannot be written: #{inspect(reason)}")

  @doc """
  Appends one record: `:done`, `:failed`, `:mark` or `:end` of a key, or `:started` of a
  `{key, etag}`.
  """
  @spec write(
          :file.io_device() | nil,
          :done | :failed | :mark | :end | :started,
          String.t() | {String.t(), String.t()}
        ) :: :ok
  def write(nil, _type, _key), do: :ok

  def write(io, :started, {key, etag}) do
    body = "S #{encode(key)} #{encode(etag)}"
    :ok = :file.write(io, [body, " ", crc(body), "\n"])
  end

  def write(io, type, key) do
    t = %{done: "D", failed: "F", mark: "M", end: "E"}[type]
    body = "#{t} #{encode(key)}"
    :ok = :file.write(io, [body, " ", crc(body), "\n"])
  end

  @doc "Flushes what was written to the disk."
  @spec sync(:file.io_device() | nil) :: :ok
  def sync(nil), do: :ok

  def sync(io) do
    _ = :file.datasync(io)
    :ok
  end

  @doc "Closes the file."
  @spec close(:file.io_device() | nil) :: :ok
  def close(nil), do: :ok

  def close(io) do
    _ = :file.datasync(io)
    _ = :file.close(io)
    :ok
  end

  defp encode(key), do: URI.encode(key, &(URI.char_unreserved?(&1) or &1 == ?/))

  defp crc(body),
    do: body |> :erlang.crc32() |> Integer.to_string(16) |> String.pad_leading(8, "0")

  defp bad(path, what),
    do: {:error, %Error{reason: :invalid_argument, message: "checkpoint #{path} #{what}"}}
end
