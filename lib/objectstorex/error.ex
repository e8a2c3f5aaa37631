defmodule ObjectStoreX.Error do
  @moduledoc """
  The one error type of ObjectStoreX.

  Every function returns `{:error, %ObjectStoreX.Error{}}` on failure and its bang variant
  raises the same struct.

  ## Reasons

    * `:not_found` - the object does not exist
    * `:already_exists` - a create-only write or copy found the target present
    * `:precondition_failed` - an `if_match`/`if_unmodified_since` check or a compare-and-swap
      `{:update, ...}` put failed
    * `:not_modified` - an `if_none_match`/`if_modified_since` check matched
    * `:permission_denied`, `:unauthenticated` - the store refused the credentials
    * `:not_supported` - the backend cannot do this operation
    * `:invalid_path` - the path is empty or not a valid object path
    * `:invalid_argument` - an argument or option is wrong; the message names it
    * `:invalid_range` - the range starts beyond the end of the object
    * `:checksum_mismatch` - a download's digest differs from the `:verify` digest expected
    * `:line_too_long` - `ObjectStoreX.Stream.lines/3` met a line longer than
      `:max_line_length`
    * `:timeout` - the call's `:timeout` expired or the network timed out
    * `:cancelled` - the operation was cancelled
    * `:network_error` - the connection failed or broke
    * `:configuration` - the store configuration is incomplete or wrong
    * `:internal` - a bug in ObjectStoreX (please report it)
    * `:generic` - any other failure reported by the backend
    * `:nif_not_loaded` - the native library could not be loaded (raised by every call; the
      message says why)

  Messages never contain credentials: configured secrets and URL query strings are redacted.
  """

  defexception reason: :generic, message: "object store error", retryable: false

  @type reason ::
          :not_found
          | :already_exists
          | :precondition_failed
          | :not_modified
          | :permission_denied
          | :unauthenticated
          | :not_supported
          | :invalid_path
          | :invalid_argument
          | :invalid_range
          | :checksum_mismatch
          | :line_too_long
          | :timeout
          | :cancelled
          | :network_error
          | :configuration
          | :internal
          | :generic
          | :nif_not_loaded

  @type t :: %__MODULE__{reason: reason(), message: String.t(), retryable: boolean()}

  @doc """
  Whether retrying the failed operation may succeed: true for timeouts, broken connections,
  throttling and server-side (5xx) failures, false otherwise.

  Accepts an error struct or a bare reason atom.

  ## Options

  None.
  """
  @spec retryable?(t() | atom() | term()) :: boolean()
  def retryable?(%__MODULE__{retryable: retryable}), do: retryable
  def retryable?(reason) when reason in [:timeout, :network_error], do: true
  def retryable?(_), do: false

  @doc false
  @spec invalid(String.t()) :: {:error, t()}
  def invalid(message), do: {:error, %__MODULE__{reason: :invalid_argument, message: message}}
end
